"""The out-of-distribution test: its calibration, its threshold, its stage's save/load, and the
null label a pipeline's SQL function gives the rows it does not recognise."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.ml import PipelineModel
from pyspark.ml.linalg import Vectors, VectorUDT
from pyspark.sql.types import StructField, StructType

from deepframes.inference.novelty import NoveltyTest, fit_novelty_test
from deepframes.inference.novelty_stage import NoveltyDetector, NoveltyModel
from deepframes.inference.runner import TopK


def _clusters(rng: np.random.Generator, num_rows: int, dimensions: int = 16) -> tuple[np.ndarray, list[str]]:
    """Three classes around three directions, like an image's non-negative pooled features."""
    centres = 4 * np.eye(dimensions)[:3] + 1.0
    labels = rng.integers(0, 3, num_rows)
    return np.abs(rng.normal(0, 0.6, (num_rows, dimensions)) + centres[labels]), ["abc"[k] for k in labels]


def test_novelty_test_keeps_the_calibrated_share_of_new_photos_like_the_training_ones():
    rng = np.random.default_rng(0)
    features, labels = _clusters(rng, 600)
    test = fit_novelty_test(features, labels, reject_threshold=0.05)
    fresh, _ = _clusters(rng, 2000)
    accepted = test.recognised(fresh).mean()
    assert 0.92 <= accepted <= 0.98, accepted  # about 1 - 0.05
    assert test.labels == ("a", "b", "c") and test.calibration.shape == (600,)
    assert np.all(np.diff(test.calibration) >= 0)


def test_novelty_test_rejects_features_unlike_every_class():
    rng = np.random.default_rng(1)
    features, labels = _clusters(rng, 300)
    test = fit_novelty_test(features, labels)
    unlike = np.concatenate([
        rng.uniform(0, 4, (20, 16)),  # noise
        np.full((1, 16), 3.0),  # flat, like a solid colour
        5 * np.eye(16)[10:12] + 0.1,  # another direction: another kind of photo
    ])
    assert not test.recognised(unlike).any()
    assert test.typicality(unlike).max() < test.reject_threshold


def test_typicality_is_the_share_of_held_out_photos_as_far_or_farther():
    test = NoveltyTest(np.eye(1), np.zeros((1, 1)), ("a",), np.array([1.0, 2.0, 3.0]), 0.3)
    # unit-length 1-d features are +-1 (distance 1 to the mean 0): 3 of 3 as far, (1 + 3) / (1 + 3)
    assert test.typicality(np.array([[2.0]])).tolist() == [1.0]
    far = NoveltyTest(np.eye(1) * 2, np.zeros((1, 1)), ("a",), np.array([1.0, 2.0, 3.0]), 0.3)
    # distance 4: none as far, (1 + 0) / 4
    assert far.typicality(np.array([[1.0]])).tolist() == [0.25] and not far.recognised(np.array([[1.0]]))[0]


def test_reject_threshold_trades_pets_for_strangers():
    rng = np.random.default_rng(2)
    features, labels = _clusters(rng, 300)
    fresh, _ = _clusters(rng, 500)
    test = fit_novelty_test(features, labels)
    rates = [test.with_reject_threshold(value).recognised(fresh).mean() for value in (0.0, 0.025, 0.1, 0.3)]
    assert rates[0] == 1.0 and rates == sorted(rates, reverse=True) and rates[-1] < 0.8
    with pytest.raises(ValueError, match=r"must be a number in \[0, 1\).*Got 1.0 instead"):
        test.with_reject_threshold(1.0)


@pytest.mark.parametrize("features, labels, kwargs, message", [
    (np.ones((6, 4)), ["a", "b"] * 3, {}, r"at least 2 photos per fold; received 6 photos for num_folds=5"),
    (np.ones((20, 4)), ["a"] * 19, {}, r"one label per feature row; received 19 labels for 20 rows"),
    (np.ones((20, 4)), ["a", "b"] * 10, {"reject_threshold": -0.1}, r"Got -0.1 instead"),
])
def test_fit_novelty_test_refuses_bad_input(features, labels, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit_novelty_test(features, labels, **kwargs)


def test_top_k_gives_null_labels_to_rows_not_recognised():
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    recognised = np.array([True, False, True])
    assert TopK(1, ("cat", "dog"), label_only=True).apply(scores, recognised).to_pylist() == ["cat", None, "cat"]
    pairs = TopK(2, ("cat", "dog")).apply(scores, recognised).to_pylist()
    assert pairs[1] is None and [item["label"] for item in pairs[2]] == ["cat", "dog"]


def test_novelty_model_saves_and_loads_alone_and_in_a_pipeline(spark, tmp_path):
    rng = np.random.default_rng(3)
    features, labels = _clusters(rng, 60)
    frame = spark.createDataFrame([(Vectors.dense(row), label) for row, label in zip(features, labels)],
                                  ["features", "label"])
    model = NoveltyDetector(rejectThreshold=0.1, numFolds=3).fit(frame)
    probe = spark.createDataFrame([(Vectors.dense(features[0]),), (Vectors.dense(np.full(16, 3.0)),), (None,)],
                                  StructType([StructField("features", VectorUDT())]))
    expected = [row.typicality for row in model.transform(probe).collect()]
    assert expected[0] >= 0.1 > expected[1] and expected[2] is None
    model.write().save(str(tmp_path / "alone"))
    PipelineModel(stages=[model]).write().save(str(tmp_path / "pipeline"))
    for loaded in (NoveltyModel.load(str(tmp_path / "alone")), PipelineModel.load(str(tmp_path / "pipeline")).stages[0]):
        assert isinstance(loaded, NoveltyModel) and loaded.getRejectThreshold() == 0.1
        assert [row.typicality for row in loaded.transform(probe).collect()] == expected
        assert np.array_equal(loaded.test_.whitening, model.test_.whitening)
        assert loaded.test_.labels == ("a", "b", "c")
    # a copy with another threshold keeps the statistics; the original keeps its threshold
    looser = model.copy({model.rejectThreshold: 0.0})
    assert looser.novelty_test().recognised(np.full((1, 16), 3.0))[0] and model.getRejectThreshold() == 0.1
    with pytest.raises(ValueError, match=r"The 'rejectThreshold' parameter of NoveltyModel must be a float in \[0, 1\). "
                                         "Got 2 instead."):
        model.setRejectThreshold(2)
