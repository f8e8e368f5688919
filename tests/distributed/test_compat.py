"""deepframes.compat.MirroredStrategyRunner keeps spark-tensorflow-distributor's arguments and checks."""

from __future__ import annotations

import inspect

import pytest

from deepframes.compat import MirroredStrategyRunner


def test_mirrored_strategy_runner_signature_matches_the_original():
    parameters = inspect.signature(MirroredStrategyRunner).parameters
    assert list(parameters) == [
        "num_slots",
        "local_mode",
        "use_gpu",
        "gpu_resource_name",
        "use_custom_strategy",
    ]
    assert all(p.kind is p.KEYWORD_ONLY for p in parameters.values())
    assert parameters["use_gpu"].default is True
    assert list(inspect.signature(MirroredStrategyRunner.run).parameters) == [
        "self",
        "train_fn",
        "kwargs",
    ]


@pytest.mark.parametrize("num_slots", [0, -1])
def test_mirrored_strategy_runner_rejects_non_positive_slots(num_slots):
    with pytest.raises(ValueError, match=f"Received: num_slots={num_slots}"):
        MirroredStrategyRunner(num_slots=num_slots)


def test_mirrored_strategy_runner_local_cpu_runs_one_worker():
    runner = MirroredStrategyRunner(num_slots=2, local_mode=True, use_gpu=False)
    with pytest.raises(
        ValueError, match=r"more than 1 CPU worker in local mode.*num_slots=2"
    ):
        runner.run(print)


def test_mirrored_strategy_runner_gpu_tasks_need_gpu_scheduling(spark):
    with pytest.raises(
        ValueError, match=r"spark.task.resource.gpu.amount of 1 or more"
    ):
        MirroredStrategyRunner(num_slots=2).get_num_tasks()
