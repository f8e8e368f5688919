"""Distributor on local[2] and in local mode: training, rendezvous, failures, retries, logs, data."""

from __future__ import annotations

import json

import pytest

from deepframes.distributed import Distributor, RankFailedError
from deepframes.distributed.preflight import check_dynamic_allocation
from tests.conftest import assert_no_job
from tests.distributed import workloads
from tests.distributed.conftest import FakeSpark


def test_distributor_torch_ddp_trains_identically(spark):
    results = Distributor(2, return_ranks="all").run(workloads.torch_ddp_train)
    workloads.assert_trained_identically(results)


def test_distributor_keras_multi_worker_mirrored_trains_identically(spark):
    results = Distributor(2, return_ranks="all").run(workloads.keras_mwms_train)
    workloads.assert_trained_identically(results)
    assert [result["cluster_workers"] for result in results] == [2, 2]


def test_distributor_local_mode_torch_ddp_trains_identically():
    results = Distributor(2, local_mode=True, return_ranks="all").run(
        workloads.torch_ddp_train
    )
    workloads.assert_trained_identically(results)


def test_distributor_sets_rendezvous_environment(spark):
    infos = Distributor(2, return_ranks="all").run(workloads.rank_info)
    assert [info["rank"] for info in infos] == [0, 1]
    assert {info["local_rank"] for info in infos} == {0, 1}
    assert len({info["run_id"] for info in infos}) == 1
    assert infos[0]["env"]["MASTER_PORT"] == infos[1]["env"]["MASTER_PORT"] != "0"
    assert [(info["env"]["RANK"], info["env"]["WORLD_SIZE"]) for info in infos] == [("0", "2"), ("1", "2")]
    assert {info["env"]["LOCAL_RANK"] for info in infos} == {"0", "1"}
    jax = {info["env"]["JAX_COORDINATOR_ADDRESS"] for info in infos}
    assert len(jax) == 1 and jax.pop().rsplit(":", 1)[1].isdigit()  # one coordinator, host:port
    tf_configs = [json.loads(info["env"]["TF_CONFIG"]) for info in infos]
    assert [config["task"]["index"] for config in tf_configs] == [0, 1]
    assert len(set(tf_configs[0]["cluster"]["worker"])) == 2
    assert [info["cuda"] for info in infos] == ["", ""]


def test_distributor_returns_first_rank_by_default(spark):
    assert Distributor(2).run(workloads.raise_on_rank, failing_rank=-1) == 0


def test_distributor_rank_error_raises_its_traceback_on_driver(spark):
    with pytest.raises(
        RankFailedError, match=r"Rank 1 failed first, with ValueError: boom on rank 1"
    ) as info:
        Distributor(2).run(workloads.raise_on_rank, 1)
    assert info.value.rank == 1
    assert info.value.error_type == "ValueError"
    assert (
        'in raise_on_rank\n    raise ValueError(f"boom on rank {ctx.rank}")'
        in info.value.remote_traceback
    )


def test_distributor_sigkilled_rank_fails_fast_without_orphans(spark, pid_folder):
    with pytest.raises(
        RankFailedError, match="rank 1's process .* was killed by signal SIGKILL"
    ):
        Distributor(2).run(workloads.kill_rank_one, pid_folder)
    assert workloads.wait_until_gone(pid_folder) == []


def test_distributor_timeout_ends_hung_ranks(spark, pid_folder):
    with pytest.raises(RankFailedError, match=r"did not finish within timeout=4 s"):
        Distributor(2, timeout=4).run(workloads.hang, pid_folder)
    assert workloads.wait_until_gone(pid_folder) == []


def test_distributor_local_mode_timeout_ends_hung_ranks(pid_folder):
    with pytest.raises(RankFailedError, match=r"did not finish within timeout=3 s"):
        Distributor(2, local_mode=True, timeout=3).run(workloads.hang, pid_folder)
    assert workloads.wait_until_gone(pid_folder, timeout=5) == []


def test_distributor_retry_resubmits_with_attempt_count(spark, tmp_path):
    attempt = Distributor(2, max_retries=1, checkpoint_dir=str(tmp_path)).run(
        workloads.fail_first_attempt
    )
    assert attempt == 1
    assert (tmp_path / "attempt-0-rank-1").exists() and (
        tmp_path / "attempt-1-rank-0"
    ).exists()


def test_distributor_without_retries_raises_first_failure(spark, tmp_path):
    with pytest.raises(RankFailedError, match="first attempt fails on purpose"):
        Distributor(2, checkpoint_dir=str(tmp_path)).run(workloads.fail_first_attempt)


def test_distributor_too_many_slots_fails_before_any_job(spark):
    with pytest.raises(
        ValueError,
        match=r"num_slots=3, but only 2 task slots are available \(local\[2\]",
    ):
        assert_no_job(spark, lambda: Distributor(3).run(workloads.rank_info))


def test_distributor_streams_logs_tagged_by_rank(spark, capsys):
    Distributor(2).run(workloads.say_hello)
    captured = capsys.readouterr()
    for rank in (0, 1):
        assert f"[rank {rank}] hello from rank {rank}" in captured.out
        assert f"[rank {rank}] WARNING workloads: logged by rank {rank}" in captured.err


def test_distributor_unpicklable_value_is_a_clear_error():
    with pytest.raises(
        RankFailedError, match="return value on rank 0 cannot be pickled"
    ):
        Distributor(1, local_mode=True).run(workloads.unpicklable_value)


def test_distributor_shards_a_dataframe_on_executors(spark):
    df = spark.createDataFrame(
        [(i, [float(i), 2.0 * i], i % 2) for i in range(10)],
        "id long, x array<double>, y int",
    )
    summaries = Distributor(2, return_ranks="all").run(
        workloads.shard_summary, df=df.repartition(3)
    )
    assert sorted(summaries[0]["ids"] + summaries[1]["ids"]) == list(range(10))
    assert abs(summaries[0]["rows"] - summaries[1]["rows"]) <= 2
    assert summaries[0]["x_shape"] == (summaries[0]["rows"], 2)
    assert summaries[0]["loader_shapes"] == ((4, 2), (4,))
    assert sum(summaries[0]["batch_rows"]) == summaries[0]["rows"]


def test_distributor_local_mode_shards_a_dataframe(spark):
    df = spark.createDataFrame(
        [(i, [float(i), 1.0], 1) for i in range(6)], "id long, x array<double>, y int"
    )
    summaries = Distributor(2, local_mode=True, return_ranks="all").run(
        workloads.shard_summary, df
    )
    assert sorted(summaries[0]["ids"] + summaries[1]["ids"]) == list(range(6))


def test_distributor_empty_shard_says_how_to_fix(spark):
    df = spark.createDataFrame([(1, [1.0], 1)], "id long, x array<double>, y int")
    with pytest.raises(
        RankFailedError, match=r"shard of the DataFrame is empty.*fewer slots"
    ):
        Distributor(2).run(workloads.shard_summary, df)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"num_slots": 0},
            r"num_slots must be a positive integer. Received: num_slots=0",
        ),
        (
            {"num_slots": 2, "return_ranks": "last"},
            r"return_ranks must be one of .* Received: return_ranks='last'",
        ),
        ({"num_slots": 2, "max_retries": -1}, r"max_retries must be an integer >= 0"),
        ({"num_slots": 2, "timeout": 0}, r"timeout must be a positive number"),
    ],
)
def test_distributor_rejects_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        Distributor(**arguments).run(workloads.rank_info)


def test_preflight_rejects_dynamic_allocation():
    with pytest.raises(ValueError, match="spark.dynamicAllocation.enabled is true"):
        check_dynamic_allocation(FakeSpark({"spark.dynamicAllocation.enabled": "true"}))


def test_a_taken_rendezvous_port_resubmits_once_beyond_max_retries():
    from dataclasses import dataclass

    from deepframes.distributed.errors import RankFailedError

    @dataclass(frozen=True)
    class Config:
        attempt: int = 0

    attempts = []

    def launch(config):
        attempts.append(config.attempt)
        if len(attempts) == 1:
            raise RankFailedError("Rank 0 failed first, with RuntimeError: Address already in use",
                                  rank=0, error_type="RuntimeError", attempts=1)
        return {0: b"ok"}

    assert Distributor(2, max_retries=0)._with_retries(launch, Config()) == {0: b"ok"}
    assert attempts == [0, 1]

    def always_taken(config):
        raise RankFailedError("EADDRINUSE", rank=1, error_type="OSError", attempts=1)

    with pytest.raises(RankFailedError):  # only one resubmission for a taken port
        Distributor(2, max_retries=0)._with_retries(always_taken, Config())
