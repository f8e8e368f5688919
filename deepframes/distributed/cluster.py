"""One attempt on the cluster: a barrier job under its own job group, watched from the driver."""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Any

from ..core.results import error_in
from .channel import ChannelServer
from .errors import RankFailedError, RunMonitor
from .task import RESULT_SCHEMA, RankFailure, RunConfig, run_barrier_rank

logger = logging.getLogger(__name__)

_CANCEL_GRACE_S = 30.0
_LAST_LINES_S = 2.0


def open_channel(
    spark: Any, monitor: RunMonitor, world_size: int
) -> ChannelServer | None:
    """The driver's log channel, or None (with a warning saying why) when it cannot open."""
    host = spark.sparkContext.getConf().get("spark.driver.host", "127.0.0.1")
    try:
        return ChannelServer(host, monitor.on_message, world_size)
    except OSError as error:
        logger.warning(
            "The log channel could not open on %s (%s): training runs, and the ranks' output stays in "
            "the executors' logs.",
            host,
            error,
        )
        return None


class BarrierJob:
    """The barrier job of one attempt, submitted from a thread so the driver can cancel it."""

    def __init__(self, spark: Any, frame: Any, config: RunConfig) -> None:
        self._sc = spark.sparkContext
        self._group = f"deepframes-{config.run_id}-attempt-{config.attempt}"
        self._frame = frame.mapInArrow(
            functools.partial(run_barrier_rank, config), RESULT_SCHEMA, barrier=True
        )
        self.rows: list[Any] | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()

    def start(self, wake: threading.Event) -> None:
        def submit() -> None:
            self._sc.setJobGroup(
                self._group, "deepframes Distributor run", interruptOnCancel=True
            )
            try:
                self.rows = self._frame.collect()
            except BaseException as error:  # noqa: BLE001 - reported by the waiting driver thread
                self.error = error
            finally:
                self.done.set()
                wake.set()

        threading.Thread(target=submit, name=self._group, daemon=True).start()

    def cancel(self) -> None:
        self._sc.cancelJobGroup(self._group)
        self.done.wait(_CANCEL_GRACE_S)


def run_attempt(
    spark: Any, frame: Any, config: RunConfig, timeout: float | None
) -> dict[int, bytes]:
    """Run one attempt; returns ``{rank: pickled value}`` or raises :class:`RankFailedError`."""
    monitor = RunMonitor()
    server = open_channel(spark, monitor, config.world_size)
    if server is not None:
        config = _with_channel(config, server)
    job = BarrierJob(spark, frame, config)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        job.start(monitor.wake)
        while not job.done.is_set() and monitor.first_failure is None:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                job.cancel()
                raise _timeout_error(timeout, config)
            monitor.wake.wait(remaining)
            monitor.wake.clear()
        if monitor.first_failure is not None:
            job.cancel()
    finally:
        if server is not None:
            server.wait_idle(_LAST_LINES_S)
            server.close()
    if monitor.first_failure is not None:
        raise RankFailedError.from_outcome(monitor.first_failure, config.attempt + 1)
    if job.error is not None:
        raise _job_error(job.error, config) from job.error
    return {row.rank: row.chunk for row in job.rows or []}


def _job_error(error: BaseException, config: RunConfig) -> RankFailedError:
    """The barrier job's error as a RankFailedError; a rank's own failure (reported through Spark
    when the log channel was not open) comes back whole, as the rank's task pickled it."""
    failure = error_in(str(error))
    if not isinstance(failure, RankFailure):
        return RankFailedError(
            f"The barrier job failed before any rank reported an error: {error}",
            rank=None, error_type=type(error).__name__, attempts=config.attempt + 1,
        )
    return RankFailedError.from_outcome(failure.outcome, config.attempt + 1)


def _with_channel(config: RunConfig, server: ChannelServer) -> RunConfig:
    import dataclasses

    return dataclasses.replace(config, channel=server.address)


def _timeout_error(timeout: float | None, config: RunConfig) -> RankFailedError:
    return RankFailedError(
        f"The run did not finish within timeout={timeout} s (attempt {config.attempt + 1}); its barrier "
        "job was cancelled and its rank processes killed. Raise Distributor(timeout=...) if the "
        "training needs longer, or look at the ranks' last lines above for a hang.",
        rank=None,
        error_type="TimeoutError",
        attempts=config.attempt + 1,
    )
