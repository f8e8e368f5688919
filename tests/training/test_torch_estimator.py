"""TorchEstimator: accuracy on pets features on one and two slots (DDP), DDP measured against its
definition, persistence and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepframes import TorchEstimator
from deepframes.training import TorchModel
from tests.training.conftest import accuracy
from tests.training.workloads import (
    equivalence_frame,
    equivalence_params,
    equivalence_torch_model,
    fitted_weights,
    pets_torch_mlp,
)


@pytest.mark.slow
@pytest.mark.parametrize("num_slots", [1, 2])
def test_torch_estimator_pets_accuracy(pets_split, num_slots, tmp_path):
    train, test = pets_split
    fitted = TorchEstimator(model=pets_torch_mlp, epochs=15, batchSize=32, learningRate=0.001,
                            numSlots=num_slots, validationFraction=0.1).fit(train)
    assert isinstance(fitted, TorchModel)
    assert accuracy(fitted, test) >= 0.9
    assert fitted.history_["loss"][-1] < fitted.history_["loss"][0]
    fitted.write().save(str(tmp_path / "stage"))
    loaded = TorchModel.load(str(tmp_path / "stage"))
    assert accuracy(loaded, test) == accuracy(fitted, test)


@pytest.mark.slow
def test_torch_two_slots_match_one_slot_after_20_steps(spark):
    frame = equivalence_frame(spark)
    one = fitted_weights(TorchEstimator(**equivalence_params("torch", 1)).fit(frame))
    two = fitted_weights(TorchEstimator(**equivalence_params("torch", 2)).fit(frame))
    assert max(float(np.abs(a - b).max()) for a, b in zip(one, two, strict=True)) < 1e-4
    torch.manual_seed(3)
    untrained = [value.detach().numpy() for value in equivalence_torch_model().state_dict().values()]
    assert max(float(np.abs(a - b).max()) for a, b in zip(one, untrained, strict=True)) > 1e-2  # it did train


def test_torch_estimator_refuses_a_module_or_an_unknown_loss_when_built():
    with pytest.raises(TypeError, match="function returning a new torch.nn.Module.*Got a Sequential object"):
        TorchEstimator(model=pets_torch_mlp())
    with pytest.raises(ValueError, match=r"'loss' parameter of TorchEstimator must be one of \['cross_entropy'"):
        TorchEstimator(model=pets_torch_mlp, loss="hinge")


def test_torch_model_reads_a_vector_column_straight_from_parquet(spark, tmp_path):
    """A fitted model over an ML vector column (dense and sparse vectors) read straight from
    Parquet predicts as over the same rows in memory (it failed with UNSUPPORTED_DATATYPE)."""
    from pyspark.ml.linalg import Vectors

    from deepframes.training.examples import small_torch_mlp

    rows = [(Vectors.sparse(4, [0], [4.0]), 1), (Vectors.dense([0.5, -1.0, 0.0, 0.2]), 0),
            (Vectors.dense([3.5, 3.0, 2.8, 3.1]), 1), (Vectors.sparse(4, [], []), 0)] * 10
    frame = spark.createDataFrame(rows, ["features", "label"])
    frame.write.parquet(str(tmp_path / "vectors"))
    from_parquet = spark.read.parquet(str(tmp_path / "vectors"))
    fitted = TorchEstimator(model=small_torch_mlp, epochs=2, batchSize=8).fit(frame)

    def predictions(df):
        return sorted((tuple(row.features.toArray()), row.prediction)
                      for row in fitted.transform(df).select("features", "prediction").collect())

    assert predictions(from_parquet) == predictions(frame)
