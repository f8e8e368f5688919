"""``local_mode=True``: the ranks run as processes on the driver machine, with no Spark job."""

from __future__ import annotations

import os
import queue
import tempfile
import threading
import time
from typing import Any

from .cleanup import FolderGuard
from .errors import RankFailedError, RunMonitor
from .gpus import visible_devices
from .process import RankOutcome, RankProcess
from .rendezvous import reserve_endpoint
from .shard import empty_shard_error, write_shard
from .task import RunConfig, context_for, start_rank

_RANK_COLUMN = "__deepframes_rank"
_LOCAL_HOST = "127.0.0.1"


def local_gpus(spark: Any, resource: str, needed: int) -> list[str]:
    """The driver's GPUs (Spark's driver resources, else ``CUDA_VISIBLE_DEVICES``); at least ``needed``."""
    addresses: list[str] = []
    if spark is not None and resource in spark.sparkContext.resources:
        addresses = list(spark.sparkContext.resources[resource].addresses)
    elif os.environ.get("CUDA_VISIBLE_DEVICES"):
        addresses = [
            str(index)
            for index in range(len(os.environ["CUDA_VISIBLE_DEVICES"].split(",")))
        ]
    if len(addresses) < needed:
        raise ValueError(
            f"use_gpu=True in local mode needs {needed} GPU(s) on the driver, but {len(addresses)} were found "
            f"(spark.driver.resource.{resource}.* or CUDA_VISIBLE_DEVICES). Lower num_slots or gpus_per_slot, "
            "or use use_gpu=False."
        )
    return addresses


def write_local_shards(df: Any, world_size: int, folder: str, shard_by: str | None = None) -> list[tuple[str, int]]:
    """Each rank's rows in a local Arrow file: here the ranks run on the driver, so rows come to it.

    Rows are dealt round-robin, or by the rank in column ``shard_by``."""
    from pyspark.sql.functions import spark_partition_id

    if shard_by is None:
        table = df.repartition(world_size).withColumn(_RANK_COLUMN, spark_partition_id()).toArrow()
        rank_column = _RANK_COLUMN
    else:
        table, rank_column = df.toArrow(), shard_by
    ranks = table.column(rank_column).to_numpy()
    table = table.drop_columns([rank_column])
    shards = []
    for rank in range(world_size):
        path = os.path.join(folder, f"shard-{rank}.arrow")
        rows = table.filter(ranks == rank)
        shards.append(
            (path, write_shard(rows.to_batches(), path) if rows.num_rows else 0)
        )
    return shards


def run_local_attempt(
    config: RunConfig,
    shards: list[tuple[str, int]] | None,
    gpus: list[str],
    timeout: float | None,
) -> dict[int, bytes]:
    """Run one attempt as ``world_size`` local processes; returns ``{rank: pickled value}``."""
    monitor = RunMonitor()
    workdir = tempfile.mkdtemp(prefix=f"deepframes-{config.run_id}-{config.attempt}-")
    guard = FolderGuard(workdir)
    processes: list[RankProcess] = []
    try:
        for rank, shard in enumerate(shards or [(None, 0)] * config.world_size):
            if shard[0] is not None and shard[1] == 0:
                error = empty_shard_error(rank, config.world_size)
                raise RankFailedError(
                    str(error),
                    rank=rank,
                    error_type="ValueError",
                    attempts=config.attempt + 1,
                )
        processes = _start_ranks(config, shards, gpus, workdir, monitor)
        return _wait_all(processes, timeout, config)
    finally:
        for process in processes:
            process.kill()
        guard.close()


def _start_ranks(
    config: RunConfig,
    shards: list[tuple[str, int]] | None,
    gpus: list[str],
    workdir: str,
    monitor: RunMonitor,
) -> list[RankProcess]:
    threads = max(1, (os.cpu_count() or 1) // config.world_size)
    per_slot = config.gpus_per_slot
    preset = os.environ.get("CUDA_VISIBLE_DEVICES")
    rank_gpus = [  # addresses index the devices this machine shows: a preset list is sliced
        visible_devices(gpus[rank * per_slot : (rank + 1) * per_slot], preset) if gpus else ()
        for rank in range(config.world_size)
    ]
    processes: list[RankProcess] = []
    try:
        for rank in range(config.world_size):
            processes.append(
                start_rank(
                    config, rank, rank_gpus[rank], workdir, threads, monitor.on_line
                )
            )
        reserved = [
            reserve_endpoint(_LOCAL_HOST, rank) for rank in range(config.world_size)
        ]
        endpoints = [endpoint for endpoint, _ in reserved]
        try:
            for rank, process in enumerate(processes):
                shard = shards[rank] if shards else (None, 0)
                process.begin(
                    context_for(config, rank, endpoints, rank_gpus[rank]), *shard
                )
        finally:
            for _, held in reserved:
                for sock in held:
                    sock.close()
    except BaseException:
        for process in processes:
            process.kill()
        raise
    return processes


def _wait_all(
    processes: list[RankProcess], timeout: float | None, config: RunConfig
) -> dict[int, bytes]:
    outcomes: queue.Queue[RankOutcome] = queue.Queue()
    for process in processes:
        threading.Thread(
            target=lambda p=process: outcomes.put(p.wait()), daemon=True
        ).start()
    deadline = None if timeout is None else time.monotonic() + timeout
    values: dict[int, bytes] = {}
    for _ in processes:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            outcome = outcomes.get(timeout=remaining)
        except queue.Empty:
            raise RankFailedError(
                f"The run did not finish within timeout={timeout} s (attempt {config.attempt + 1}); its rank "
                "processes were killed. Raise Distributor(timeout=...) if the training needs longer.",
                rank=None,
                error_type="TimeoutError",
                attempts=config.attempt + 1,
            ) from None
        if not outcome.ok:
            raise RankFailedError.from_outcome(outcome, config.attempt + 1)
        if outcome.value is not None:
            values[outcome.rank] = outcome.value
    return values
