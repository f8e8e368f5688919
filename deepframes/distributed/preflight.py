"""Checks made before a barrier job is submitted, so a run that cannot start fails in seconds.

Without them Spark retries a barrier job that lacks slots 40 times 15 s before failing.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from typing import Any

logger = logging.getLogger(__name__)

_LOCAL = re.compile(r"local\[(\d+|\*)(?:,\s*\d+)?\]$")
_LOCAL_CLUSTER = re.compile(r"local-cluster\[(\d+),\s*(\d+),\s*\d+\]$")
_EXECUTORS_WAIT_S = 15.0


def _conf(spark: Any, key: str, default: str | None = None) -> str | None:
    return spark.sparkContext.getConf().get(key, default)


def check_dynamic_allocation(spark: Any) -> None:
    if str(_conf(spark, "spark.dynamicAllocation.enabled", "false")).lower() == "true":
        raise ValueError(
            "Barrier-mode training needs a fixed set of executors, but spark.dynamicAllocation.enabled"
            " is true. Start the session with spark.dynamicAllocation.enabled=false."
        )


def _flag(spark: Any, key: str) -> bool:
    return str(_conf(spark, key, "false")).strip().lower() == "true"


def check_encryption(spark: Any, runner: str, ignore_key: str) -> None:
    """Refuse to train across machines on a cluster that asks for TLS (``spark.ssl.enabled``),
    as spark-tensorflow-distributor did: the frameworks' own traffic between ranks (gradients,
    parameters), the rendezvous and the ranks' logs and results travel unencrypted. The setting
    ``ignore_key`` accepts that, with a warning.
    """
    if not _flag(spark, "spark.ssl.enabled"):
        return
    if _flag(spark, ignore_key):
        logger.warning(
            "This cluster has TLS encryption enabled (spark.ssl.enabled=true), but %s does not "
            "encrypt data in transit; %s=true overrides this, so model parameters and possibly "
            "training data travel between machines unencrypted.",
            runner,
            ignore_key,
        )
        return
    raise ValueError(
        f"This cluster has TLS encryption enabled (spark.ssl.enabled=true), but {runner} does not "
        "encrypt data in transit: gradients, model parameters and possibly training data would "
        f"travel between machines unencrypted. Expected spark.ssl.enabled=false, or {ignore_key}=true "
        f"to train anyway. Set {ignore_key}=true in the Spark configuration (e.g. "
        f"deepframes.session(**{{{ignore_key!r}: 'true'}})) if the network between the machines is "
        "trusted, or use local_mode=True to train on this machine only."
    )


def task_gpu_amount(spark: Any, resource: str) -> float:
    """``spark.task.resource.<resource>.amount`` (0 when not set)."""
    return float(_conf(spark, f"spark.task.resource.{resource}.amount", "0") or 0)


def check_gpus(spark: Any, resource: str, gpus_per_slot: int) -> None:
    """With ``use_gpu``: the session must schedule GPUs, enough per task for ``gpus_per_slot``."""
    amount = task_gpu_amount(spark, resource)
    if amount <= 0:
        raise ValueError(
            f"use_gpu=True, but spark.task.resource.{resource}.amount is not set, so Spark gives tasks "
            f"no GPUs. Start the session with spark.task.resource.{resource}.amount (e.g. 1), "
            f"spark.executor.resource.{resource}.amount and a discovery script "
            f"(spark.executor.resource.{resource}.discoveryScript), or use use_gpu=False."
        )
    if amount < 1 and gpus_per_slot > 1:
        raise ValueError(
            f"gpus_per_slot={gpus_per_slot}, but spark.task.resource.{resource}.amount={amount:g} shares "
            "one GPU between tasks. Use gpus_per_slot=1, or a whole amount per task."
        )
    if amount >= 1 and math.floor(amount) < gpus_per_slot:
        raise ValueError(
            f"gpus_per_slot={gpus_per_slot}, but spark.task.resource.{resource}.amount={amount:g}. "
            f"Set spark.task.resource.{resource}.amount={gpus_per_slot}, or lower gpus_per_slot."
        )


def available_slots(spark: Any, wanted: int = 1, patience: float | None = None) -> tuple[int, str]:
    """How many tasks can run at once now, and how that was found (for messages).

    On a cluster, while fewer than ``wanted`` slots are free, waits (at most 15 s) for executors
    still registering and for running tasks to end; with ``patience``, waits that long for
    ``wanted`` slots (a lost executor being replaced) even when the cluster looks settled.
    """
    sc = spark.sparkContext
    master = sc.master
    task_cpus = int(_conf(spark, "spark.task.cpus", "1") or 1)
    match = _LOCAL.match(master)
    if match:
        cores = (os.cpu_count() or 1) if match.group(1) == "*" else int(match.group(1))
        return cores // task_cpus, f"{master} with spark.task.cpus={task_cpus}"
    if master == "local":
        return 1 // task_cpus, master
    expected = _expected_executors(master, _conf(spark, "spark.executor.instances"))
    slots = _cluster_slots(sc, expected, wanted, patience)
    return slots, f"{master}: free task slots on the executors registered now"


def _expected_executors(master: str, instances: str | None) -> int:
    match = _LOCAL_CLUSTER.match(master)
    return int(match.group(1)) if match else int(instances or 1)


def _cluster_slots(sc: Any, expected_executors: int, wanted: int, patience: float | None = None) -> int:
    # Executors register a moment after the session starts; wait (bounded) for the expected ones.
    jsc = sc._jsc.sc()
    deadline = time.monotonic() + (patience or _EXECUTORS_WAIT_S)
    while True:
        executors = [
            info
            for info in jsc.statusTracker().getExecutorInfos()
            if info.host() and info.port() > 0
        ]
        busy = sum(info.numRunningTasks() for info in executors)
        profile = jsc.resourceProfileManager().defaultResourceProfile()
        slots = max(0, int(jsc.maxNumConcurrentTasks(profile)) - busy)
        # The driver is listed among the executors too. Tasks of a cancelled run may still be
        # ending, so busy slots are worth a (bounded) wait; missing capacity is not.
        settled = patience is None and len(executors) - 1 >= expected_executors and busy == 0
        if slots >= wanted or settled or time.monotonic() > deadline:
            return slots
        time.sleep(0.2)


def check_slots(spark: Any, num_slots: int, patience: float | None = None) -> None:
    """Fail when fewer than ``num_slots`` tasks can run together (at once, or after ``patience`` s)."""
    slots, where = available_slots(spark, num_slots, patience)
    if slots < num_slots:
        raise ValueError(
            f"Asked for num_slots={num_slots}, but only {slots} task slots are available ({where}). "
            f"A barrier run starts all its ranks together, so it needs {num_slots} free slots. "
            f"Use num_slots={max(slots, 1)}, add executors or cores, lower spark.task.cpus, or run the "
            "ranks on this machine with local_mode=True."
        )
