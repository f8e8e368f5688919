"""pyspark.ml model selection over the estimators' Params: CrossValidator over a 2x2 grid, and
fits running two at once with parallelism=2."""

from __future__ import annotations

import threading
import time

import pytest
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml.tuning import CrossValidator, ParamGridBuilder

from deepframes import TorchEstimator
from tests.training.workloads import pets_torch_mlp


@pytest.mark.slow
def test_cross_validator_over_a_2x2_grid_runs_two_fits_at_once(pets_split, monkeypatch):
    train, test = pets_split
    estimator = TorchEstimator(model=pets_torch_mlp, epochs=5, batchSize=32)
    grid = (ParamGridBuilder().addGrid(estimator.learningRate, [0.001, 0.0001])
            .addGrid(estimator.epochs, [2, 6]).build())
    running, most = [0], [0]
    lock = threading.Lock()
    fit = TorchEstimator._fit

    def counting_fit(self, dataset):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            return fit(self, dataset)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(TorchEstimator, "_fit", counting_fit)
    evaluator = MulticlassClassificationEvaluator(metricName="accuracy")
    started = time.perf_counter()
    model = CrossValidator(estimator=estimator, estimatorParamMaps=grid, evaluator=evaluator, numFolds=2,
                           parallelism=2, seed=1).fit(train)
    assert len(model.avgMetrics) == 4
    assert most[0] == 2, "parallelism=2 should run two fits at once"
    best = grid[max(range(4), key=lambda i: model.avgMetrics[i])]
    assert best[estimator.learningRate] == 0.001 and best[estimator.epochs] == 6
    assert evaluator.evaluate(model.bestModel.transform(test)) >= 0.85
    assert time.perf_counter() - started < 600
