"""KerasEstimator: accuracy on pets features on one and two slots, data parallelism measured
against its definition, nothing collected to the driver, persistence, and bad input."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from pyspark.sql import DataFrame

from deepframes import KerasEstimator
from deepframes.training import KerasModel
from tests.training.conftest import accuracy
from tests.training.workloads import (
    equivalence_frame,
    equivalence_keras_model,
    equivalence_params,
    fitted_weights,
    pets_keras_mlp,
)


def pets_estimator(**params) -> KerasEstimator:
    return KerasEstimator(**{"model": pets_keras_mlp, "epochs": 15, "batchSize": 32, "learningRate": 0.001, **params})


@pytest.mark.slow
@pytest.mark.parametrize("num_slots", [1, 2])
def test_keras_estimator_pets_accuracy(pets_split, num_slots):
    train, test = pets_split
    fitted = pets_estimator(numSlots=num_slots, validationFraction=0.1).fit(train)
    assert isinstance(fitted, KerasModel)
    assert accuracy(fitted, test) >= 0.9
    assert len(fitted.history_["loss"]) == 15 and "val_accuracy" in fitted.history_
    assert fitted.summary_["num_slots"] == num_slots
    assert fitted.history_["loss"][-1] < fitted.history_["loss"][0]


@pytest.mark.slow
def test_keras_two_slots_match_one_slot_after_20_steps(spark):
    # Same initial weights, same global batches (each rank half of each), through fit(df):
    # data-parallel training must end where one slot does.
    frame = equivalence_frame(spark)
    one = fitted_weights(KerasEstimator(**equivalence_params("keras", 1)).fit(frame))
    two = fitted_weights(KerasEstimator(**equivalence_params("keras", 2)).fit(frame))
    assert max(float(np.abs(a - b).max()) for a, b in zip(one, two, strict=True)) < 1e-4
    untrained = equivalence_keras_model().get_weights()
    assert max(float(np.abs(a - b).max()) for a, b in zip(one, untrained)) > 1e-2  # it did train


@pytest.mark.slow
def test_keras_fit_collects_no_rows_to_the_driver(pets_split, monkeypatch):
    train, _ = pets_split
    collected: list[list[str]] = []
    original = DataFrame.collect
    lock = threading.Lock()

    def recording_collect(self):
        rows = original(self)
        with lock:
            collected.append([self.columns, len(rows)])
        return rows

    for name in ("toPandas", "toArrow", "toLocalIterator"):
        monkeypatch.setattr(DataFrame, name, lambda self, *a, **k: pytest.fail("a DataFrame was pulled to the driver"))
    monkeypatch.setattr(DataFrame, "collect", recording_collect)
    pets_estimator(epochs=1, numSlots=2).fit(train)
    # Only the aggregate (a row per partition and split) and the ranks' results reach the driver.
    assert all("__deepframes_features" not in columns and "features" not in columns for columns, _ in collected)
    assert sum(rows for _, rows in collected) <= 2 * train.rdd.getNumPartitions() + 2


@pytest.mark.slow
def test_keras_model_save_load_in_a_new_session(pets_split, spark_sessions, tmp_path):
    train, test = pets_split
    fitted = pets_estimator(epochs=3).fit(train)
    test.write.parquet(str(tmp_path / "test"))
    expected = fitted.transform(test).select("prediction", "probability").collect()
    fitted.write().save(str(tmp_path / "stage"))
    fresh = spark_sessions.get("local[2]", **{"spark.sql.shuffle.partitions": "4"})  # a new SparkContext
    loaded = KerasModel.load(str(tmp_path / "stage"))
    assert loaded.history_ == fitted.history_
    # cached: ModelTransformer fails on an ML vector column scanned straight from Parquet
    frame = fresh.read.parquet(str(tmp_path / "test")).cache()
    got = loaded.transform(frame).select("prediction", "probability").collect()
    assert [row.prediction for row in got] == [row.prediction for row in expected]
    np.testing.assert_allclose([row.probability for row in got], [row.probability for row in expected], atol=1e-5)


def test_keras_estimator_rejects_unpicklable_factory(spark, pets_split):
    lock = threading.Lock()

    def build():
        with lock:
            return pets_keras_mlp()

    with pytest.raises(TypeError, match="model factory must be picklable.*Define it at module level"):
        KerasEstimator(model=build).fit(pets_split[0])


def test_keras_estimator_rejects_labels_outside_the_output_layer(spark, pets_split):
    from deepframes.training.examples import small_mlp

    import functools

    two_classes = functools.partial(small_mlp, 512, 2)
    with pytest.raises(ValueError, match=r"labels range over \[0, 2\].*2 classes.*StringIndexer"):
        KerasEstimator(model=two_classes).fit(pets_split[0])


def test_keras_estimator_rejects_a_feature_shape_the_model_cannot_take(spark, pets_split):
    from deepframes.training.examples import small_mlp

    with pytest.raises(ValueError, match=r"cells of shape \[\?, 512\].*model's input is \[\?, 4\]"):
        KerasEstimator(model=small_mlp).fit(pets_split[0])


def test_keras_estimator_rejects_more_slots_than_the_cluster(spark, pets_split):
    with pytest.raises(ValueError, match="num_slots=3.*only 2 task slots"):
        pets_estimator(numSlots=3, batchSize=30).fit(pets_split[0])


def test_keras_estimator_rejects_a_batch_that_does_not_split(spark, pets_split):
    with pytest.raises(ValueError, match="multiple of numSlots=2.*batchSize=33"):
        pets_estimator(numSlots=2, batchSize=33).fit(pets_split[0])


def test_keras_estimator_refuses_an_optimizer_keras_does_not_know_before_training(spark):
    from deepframes.training.examples import small_mlp, two_blobs

    with pytest.raises(ValueError, match=r"^The 'optimizer' parameter of KerasEstimator must be a Keras optimizer "
                                         r"name or config dict. Got 'nope' instead.$"):
        KerasEstimator(model=small_mlp, optimizer="nope").fit(two_blobs(spark, 20))
