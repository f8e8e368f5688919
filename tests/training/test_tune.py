"""tune: a 12-point grid, a trial that raises, time_budget, median pruning, bad input."""

from __future__ import annotations

import logging
import time

import pytest

from deepframes import TorchEstimator, tune
from tests.training.conftest import accuracy
from tests.training.workloads import broken_torch_mlp, pets_torch_mlp


def estimator(**params) -> TorchEstimator:
    return TorchEstimator(**{"model": pets_torch_mlp, "epochs": 8, "batchSize": 32, "validationFraction": 0.2,
                             **params})


@pytest.mark.slow
def test_tune_grid_of_12_returns_every_trial_and_a_best_model(pets_split, caplog):
    train, test = pets_split
    space = {"learningRate": [0.003, 0.001, 0.0003, 0.0001], "batchSize": [16, 32, 64]}
    with caplog.at_level(logging.INFO, logger="deepframes.training.tune"):
        found = tune(estimator(), train, space, metric="val_accuracy", parallelism=2, seed=0)
    results = found.results
    assert len(results) == 12 and (results["status"] == "ok").all()
    assert {"learningRate", "batchSize", "metric", "val_accuracy_per_epoch", "seconds", "error"} <= set(results)
    assert all(len(curve) == 8 for curve in results["val_accuracy_per_epoch"])
    assert found.best_params["learningRate"] in space["learningRate"]
    assert accuracy(found.best_model, test) >= 0.92
    assert any("12 done" in record.getMessage() and "best val_accuracy" in record.getMessage()
               for record in caplog.records)


@pytest.mark.slow
def test_tune_records_a_trial_that_raises_and_goes_on(pets_split):
    found = tune(estimator(epochs=3), pets_split[0], {"model": [pets_torch_mlp, broken_torch_mlp]},
                 metric="val_accuracy")
    statuses = dict(zip(found.results["trial"], found.results["status"]))
    assert statuses == {0: "ok", 1: "failed"}
    assert "broken on purpose" in found.results["error"][1]
    assert found.best_params["model"] is pets_torch_mlp


@pytest.mark.slow
def test_tune_time_budget_stops_launching_and_cancels(pets_split):
    started = time.perf_counter()
    found = tune(estimator(epochs=20000), pets_split[0], {"learningRate": [0.001, 0.0003, 0.0001, 0.00003]},
                 metric="val_accuracy", parallelism=2, time_budget=20, refit=False)
    search_seconds = found.results["seconds"].max()
    assert search_seconds < 20 + 15
    assert set(found.results["status"]) == {"cancelled"}  # 20000 epochs cannot finish in 20 s
    assert len(found.results) == 2  # no trial was launched after the budget
    assert time.perf_counter() - started > 20
    assert found.best_model is None and found.best_params["learningRate"] in (0.001, 0.0003)


@pytest.mark.slow
def test_tune_median_rule_prunes_weak_trials(pets_split):
    space = {"learningRate": [0.003, 0.001, 1e-6, 1e-7, 3e-7, 1e-8]}
    found = tune(estimator(epochs=6), pets_split[0], space, metric="val_accuracy", parallelism=2,
                 early_stop="median")
    pruned = found.results[found.results["status"] == "pruned"]
    assert len(pruned) >= 1
    assert all(rate < 1e-5 for rate in pruned["learningRate"])
    assert found.best_params["learningRate"] in (0.003, 0.001)


@pytest.mark.slow
def test_tune_runs_trials_of_two_slots_each(spark):
    from deepframes.training.examples import small_torch_mlp, two_blobs

    two_slots = TorchEstimator(model=small_torch_mlp, epochs=3, batchSize=20, numSlots=2)
    found = tune(two_slots, two_blobs(spark, 200), {"learningRate": [0.05, 0.01]}, metric="val_accuracy",
                 parallelism=1, seed=0)
    assert list(found.results["status"]) == ["ok", "ok"]
    assert all(len(curve) == 3 for curve in found.results["val_accuracy_per_epoch"])
    assert found.best_params["learningRate"] in (0.05, 0.01)
    assert found.best_model.summary_["num_slots"] == 2
    scored = found.best_model.transform(two_blobs(spark, 100, seed=1))
    assert scored.where("prediction = label").count() >= 90


def test_tune_rejects_a_param_the_estimator_does_not_have(spark):
    with pytest.raises(ValueError, match="names Param 'learning_rate', which TorchEstimator does not have.*learningRate"):
        tune(estimator(), None, {"learning_rate": [0.1]}, metric="val_accuracy")


def test_tune_rejects_a_metric_it_cannot_read(spark):
    with pytest.raises(ValueError, match="cannot read metric 'auc'.*val_accuracy"):
        tune(estimator(), None, {"learningRate": [0.1]}, metric="auc")


def test_tune_rejects_a_metric_the_evaluator_does_not_know(spark):
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator

    with pytest.raises(ValueError, match="does not know metric 'auc'"):
        tune(estimator(), None, {"learningRate": [0.1]}, metric="auc", evaluator=MulticlassClassificationEvaluator())


def test_tune_optuna_says_which_extra_to_install(spark):
    pytest.importorskip("pyspark")
    try:
        import optuna  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"pip install 'deepframes\[tune\]'"):
            tune(estimator(), None, {"learningRate": (1e-4, 1e-2)}, metric="val_accuracy", search="optuna",
                 num_trials=2)
    else:
        pytest.skip("Optuna is installed")
