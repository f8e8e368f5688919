"""Distributor and MirroredStrategyRunner on separate executors (local-cluster), and fake GPUs."""

from __future__ import annotations

import pickle

import pytest

from deepframes.compat import MirroredStrategyRunner
from deepframes.distributed import Distributor, RankFailedError
from tests.conftest import CLUSTER_MASTER, assert_no_job
from tests.distributed import workloads

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def test_cluster_torch_ddp_trains_identically(cluster_spark):
    results = Distributor(2, return_ranks="all").run(workloads.torch_ddp_train)
    workloads.assert_trained_identically(results)


def test_cluster_mirrored_strategy_runner_trains_keras_identically(
    cluster_spark, tmp_path
):
    runner = MirroredStrategyRunner(num_slots=2, use_gpu=False)
    chief = runner.run(workloads.keras_mwms_train, steps=6, results_dir=str(tmp_path))
    results = [
        pickle.loads((tmp_path / f"rank-{rank}.pkl").read_bytes()) for rank in (0, 1)
    ]
    workloads.assert_trained_identically(results)
    assert chief["losses"] == results[0]["losses"]


def test_cluster_ranks_run_in_separate_executors(cluster_spark):
    infos = Distributor(2, return_ranks="all").run(workloads.rank_info)
    assert [info["rank"] for info in infos] == [0, 1]
    executors = (
        cluster_spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1
    )
    assert executors == 2


def test_cluster_rank_error_and_logs_reach_driver(cluster_spark, capsys):
    with pytest.raises(
        RankFailedError, match="Rank 0 failed first, with ValueError: boom on rank 0"
    ) as info:
        Distributor(2).run(workloads.raise_on_rank, 0)
    assert "raise ValueError" in info.value.remote_traceback
    Distributor(2).run(workloads.say_hello)
    captured = capsys.readouterr()
    assert (
        "[rank 0] hello from rank 0" in captured.out
        and "[rank 1] hello from rank 1" in captured.out
    )


def test_cluster_sigkilled_rank_fails_fast_without_orphans(cluster_spark, pid_folder):
    with pytest.raises(RankFailedError, match="killed by signal SIGKILL"):
        Distributor(2).run(workloads.kill_rank_one, pid_folder)
    assert workloads.wait_until_gone(pid_folder) == []


def test_cluster_retry_sees_attempt(cluster_spark, tmp_path):
    assert (
        Distributor(2, max_retries=1, checkpoint_dir=str(tmp_path)).run(
            workloads.fail_first_attempt
        )
        == 1
    )


def test_cluster_too_many_slots_fails_before_any_job(cluster_spark):
    with pytest.raises(
        ValueError, match=r"num_slots=3, but only 2 task slots are available"
    ):
        assert_no_job(cluster_spark, lambda: Distributor(3).run(workloads.rank_info))


def test_cluster_shards_a_dataframe(cluster_spark):
    df = cluster_spark.createDataFrame(
        [(i, [float(i), 0.5], i % 3) for i in range(20)],
        "id long, x array<double>, y int",
    )
    summaries = Distributor(2, return_ranks="all").run(workloads.shard_summary, df)
    assert sorted(summaries[0]["ids"] + summaries[1]["ids"]) == list(range(20))
    assert abs(summaries[0]["rows"] - summaries[1]["rows"]) <= 2


def test_cluster_fake_gpus_are_distinct_per_rank(gpu_cluster_spark):
    infos = Distributor(2, use_gpu=True, return_ranks="all").run(workloads.rank_info)
    # Spark assigned addresses 0 and 1: entries 0 and 1 of the executor's CUDA_VISIBLE_DEVICES.
    assert sorted(info["cuda"] for info in infos) == ["5", "7"]
    assert [info["gpus"] for info in infos] == [(info["cuda"],) for info in infos]


def test_cluster_use_gpu_without_gpu_resources_fails_at_once(spark_sessions):
    spark_sessions.get(CLUSTER_MASTER)
    with pytest.raises(
        ValueError, match=r"use_gpu=True, but spark.task.resource.gpu.amount is not set"
    ):
        Distributor(2, use_gpu=True).run(workloads.rank_info)
