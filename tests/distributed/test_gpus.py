"""GPU checks and assignment that need no GPU: Spark settings and CUDA_VISIBLE_DEVICES."""

from __future__ import annotations

import pytest

from deepframes.distributed.gpus import rank_gpus, visible_devices
from deepframes.distributed.preflight import check_gpus
from tests.distributed.conftest import FakeSpark


def test_check_gpus_needs_task_gpu_amount():
    with pytest.raises(ValueError, match=r"spark.task.resource.gpu.amount is not set"):
        check_gpus(FakeSpark({}), "gpu", gpus_per_slot=1)


def test_check_gpus_accepts_a_fraction_for_one_gpu_per_slot():
    check_gpus(
        FakeSpark({"spark.task.resource.gpu.amount": "0.5"}), "gpu", gpus_per_slot=1
    )


def test_check_gpus_rejects_a_fraction_for_several_gpus_per_slot():
    spark = FakeSpark({"spark.task.resource.gpu.amount": "0.5"})
    with pytest.raises(
        ValueError, match=r"gpus_per_slot=2, but .*amount=0.5 shares one GPU"
    ):
        check_gpus(spark, "gpu", gpus_per_slot=2)


def test_check_gpus_rejects_fewer_gpus_per_task_than_per_slot():
    spark = FakeSpark({"spark.task.resource.gpu.amount": "1"})
    with pytest.raises(ValueError, match=r"Set spark.task.resource.gpu.amount=2"):
        check_gpus(spark, "gpu", gpus_per_slot=2)


def test_rank_gpus_shared_address_of_a_fractional_task():
    # With amount 0.5, two tasks get the same single address; each rank sees that GPU.
    assert rank_gpus(["1"], 1, None) == ("1",)
    assert rank_gpus(["1"], 1, "3,4") == ("4",)


def test_rank_gpus_takes_the_lowest_addresses():
    assert rank_gpus(["3", "1", "2"], 2, None) == ("1", "2")


def test_visible_devices_rejects_an_address_outside_the_preset():
    with pytest.raises(
        ValueError, match=r"address '2', but CUDA_VISIBLE_DEVICES='4,5' lists 2"
    ):
        visible_devices(["2"], "4,5")


def test_rank_gpus_too_few_for_the_slot():
    with pytest.raises(
        ValueError, match=r"gpus_per_slot=2, but Spark gave this task 1 GPU"
    ):
        rank_gpus(["0"], 2, None)


def test_local_mode_slices_a_preset_cuda_visible_devices(monkeypatch):
    from deepframes import Distributor
    from tests.distributed import workloads

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    results = Distributor(2, local_mode=True, use_gpu=True, return_ranks="all").run(workloads.rank_info)
    assert [result["cuda"] for result in results] == ["4", "5"]
    assert [result["gpus"] for result in results] == [("4",), ("5",)]
