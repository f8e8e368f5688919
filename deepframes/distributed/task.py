"""The barrier task of one rank, on an executor: shard, rendezvous, GPUs, then ``fn`` in a child."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..core.results import error_line
from .channel import ChannelAddress, ChannelClient
from .cleanup import FolderGuard
from .context import RankContext
from .gpus import rank_gpus
from .process import LineSink, RankOutcome, RankProcess, child_environment, make_spec
from .rendezvous import Endpoint, rank_context, reserve_endpoint
from .shard import empty_shard_error, write_shard

RESULT_SCHEMA = "rank int, chunk binary"
# How long a rank waits at the driver for the others' endpoints before all fall back to allGather.
_RENDEZVOUS_PATIENCE_S = 120.0


@dataclass(frozen=True)
class RunConfig:
    """Everything a rank's task needs, shipped to the executors as one small frozen object."""

    run_id: str
    attempt: int
    world_size: int
    payload: bytes
    wants_ctx: bool
    checkpoint_dir: str
    channel: ChannelAddress | None
    use_gpu: bool
    gpus_per_slot: int
    gpu_resource: str
    return_all: bool
    max_result_bytes: int
    has_shard: bool


def start_rank(
    config: RunConfig,
    rank: int,
    gpus: tuple[str, ...],
    workdir: str,
    threads: int,
    on_line: LineSink,
) -> RankProcess:
    """Start ``rank``'s process (on an executor or, locally, here); it loads ``fn`` meanwhile."""
    spec = make_spec(
        config.payload,
        rank=rank,
        wants_ctx=config.wants_ctx,
        return_value=config.return_all or rank == 0,
        max_result_bytes=config.max_result_bytes,
    )
    env = child_environment(gpus, threads)
    # The rank's temporary files (TensorFlow's autograph modules, torch's elastic folders) go
    # into its work folder, removed with it: a rank ending with os._exit cleans up nothing itself.
    env["TMPDIR"] = tempfile.mkdtemp(prefix=f"rank{rank}-tmp-", dir=workdir)
    return RankProcess(spec, workdir, env, on_line)


def context_for(
    config: RunConfig, rank: int, endpoints: list[Endpoint], gpus: tuple[str, ...]
) -> RankContext:
    """``rank``'s context in this attempt, once every rank's endpoint is known."""
    return rank_context(
        rank,
        endpoints,
        attempt=config.attempt,
        run_id=config.run_id,
        checkpoint_dir=config.checkpoint_dir,
        gpus=gpus,
    )


class RankFailure(RuntimeError):
    """Raised in a barrier task when its rank failed, so that Spark stops the other ranks.

    Its message ends with the failure itself, pickled (``core.results.error_line``): the driver
    reads the rank's outcome back from Spark's error without parsing the text around it.
    """

    def __init__(self, outcome: RankOutcome) -> None:
        super().__init__(outcome)
        self.outcome = outcome

    def __str__(self) -> str:
        return f"{_failure_text(self.outcome)}\n{error_line(self)}"


def run_barrier_rank(config: RunConfig, batches: Iterator[Any]) -> Iterator[Any]:
    """The ``mapInArrow`` function of the barrier stage: runs one rank, yields its pickled value."""
    import pyarrow as pa
    from pyspark import BarrierTaskContext

    barrier = BarrierTaskContext.get()
    rank = barrier.partitionId()
    client = _open_channel(config.channel, rank)
    workdir = tempfile.mkdtemp(
        prefix=f"deepframes-{config.run_id}-{config.attempt}-rank{rank}-"
    )
    guard = FolderGuard(workdir)  # removes it even when Spark kills this worker
    try:
        outcome = _run_rank(config, barrier, rank, batches, workdir, client)
        if not outcome.ok:
            if client is not None:
                client.send(outcome.to_message())
            raise RankFailure(outcome)
        if outcome.value is not None and (config.return_all or rank == 0):
            yield pa.record_batch(
                {
                    "rank": pa.array([rank], pa.int32()),
                    "chunk": pa.array([outcome.value], pa.binary()),
                }
            )
    finally:
        if client is not None:
            client.close()
        guard.close()


def _run_rank(
    config: RunConfig,
    barrier: Any,
    rank: int,
    batches: Iterator[Any],
    workdir: str,
    client: ChannelClient | None,
) -> RankOutcome:
    gpus = _task_gpus(config, barrier) if config.use_gpu else ()
    process = start_rank(
        config, rank, gpus, workdir, int(barrier.cpus()), _line_sink(client)
    )
    begun = False
    try:
        shard_path = os.path.join(workdir, "shard.arrow") if config.has_shard else None
        shard_rows = (
            write_shard(batches, shard_path) if shard_path else sum(1 for _ in batches)
        )
        if shard_path and shard_rows == 0:
            error = str(empty_shard_error(rank, config.world_size))
            return RankOutcome(
                rank, ok=False, error_type="ValueError", message=error, traceback=error
            )
        host = barrier.getTaskInfos()[rank].address.rsplit(":", 1)[0]
        endpoint, held = reserve_endpoint(host, rank)
        try:
            endpoints = _gather_endpoints(barrier, client, endpoint)
            process.begin(
                context_for(config, rank, endpoints, gpus), shard_path, shard_rows
            )
            begun = True
        finally:
            # The hand-off: the rank's process binds these ports only after it has begun.
            for sock in held:
                sock.close()
        return process.wait()
    finally:
        if not begun:
            process.kill()


def _gather_endpoints(
    barrier: Any, client: ChannelClient | None, endpoint: Endpoint
) -> list[Endpoint]:
    wire = endpoint.to_wire()
    gathered = (
        client.gather(wire, _RENDEZVOUS_PATIENCE_S) if client is not None else None
    )
    if gathered is None:
        gathered = barrier.allGather(wire)
    return [Endpoint.from_wire(text) for text in gathered]


def _task_gpus(config: RunConfig, barrier: Any) -> tuple[str, ...]:
    resource = barrier.resources().get(config.gpu_resource)
    addresses = list(resource.addresses) if resource is not None else []
    return rank_gpus(
        addresses, config.gpus_per_slot, os.environ.get("CUDA_VISIBLE_DEVICES")
    )


def _open_channel(address: ChannelAddress | None, rank: int) -> ChannelClient | None:
    if address is None:
        return None
    try:
        return ChannelClient(address, rank)
    except OSError as error:
        print(
            f"deepframes: rank {rank} cannot reach the driver's log channel at {address.host}:{address.port} "
            f"({error}); training goes on, its output stays in this executor's log.",
            file=sys.stderr,
        )
        return None


def _line_sink(client: ChannelClient | None):
    def on_line(rank: int, stream: str, line: str) -> None:
        if client is not None:
            client.send_line(stream, line)
        else:
            # No channel: keep the lines in the executor's log.
            print(
                f"[rank {rank}] {line}",
                file=sys.stderr if stream == "stderr" else sys.stdout,
                flush=True,
            )

    return on_line


def _failure_text(outcome: RankOutcome) -> str:
    tail = "\n".join(outcome.tail[-10:])
    return (
        f"rank {outcome.rank} failed with {outcome.error_type}: {outcome.message}\n"
        f"{outcome.traceback}"
        + (f"\nLast output lines of rank {outcome.rank}:\n{tail}" if tail else "")
    )
