"""TorchEstimator: accuracy on pets features on one and two slots (DDP), DDP measured against its
definition, persistence and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from deepframes import Distributor, TorchEstimator
from deepframes.training import TorchModel
from tests.training.conftest import accuracy
from tests.training.workloads import equivalence_rank, pets_torch_mlp


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
    one = Distributor(1).run(equivalence_rank, "torch", 1)
    two = Distributor(2).run(equivalence_rank, "torch", 2)
    assert max(float(np.abs(a - b).max()) for a, b in zip(one, two)) < 1e-4


def test_torch_estimator_needs_a_factory_not_a_module(spark, pets_split):
    with pytest.raises(TypeError, match="function returning a new torch.nn.Module.*received Sequential"):
        TorchEstimator(model=pets_torch_mlp()).fit(pets_split[0])


def test_torch_estimator_rejects_an_unknown_loss(spark, pets_split):
    with pytest.raises(ValueError, match="unknown loss 'hinge'.*cross_entropy"):
        TorchEstimator(model=pets_torch_mlp, loss="hinge").fit(pets_split[0])
