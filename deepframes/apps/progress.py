"""Progress of a long Spark job counted in images (done / total, images/s), not in stages and tasks.

Spark reports finished tasks; each task of the job's last stage handles one partition, and the
partitions hold about equal numbers of files, so ``total * finished / tasks`` is the images done.
A thread polls Spark's status tracker for the jobs of one job group; it needs no listener, and
works the same on a local session and a cluster.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pyspark.sql import SparkSession

_GROUPS = itertools.count()


@dataclass(frozen=True)
class ImageCount:
    """Images done out of ``total`` after ``seconds``; ``final`` on the last report."""

    done: int
    total: int
    seconds: float
    final: bool = False

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    @property
    def seconds_left(self) -> float | None:
        """The time left at the rate so far (None before the first image is done)."""
        return (self.total - self.done) / self.rate if self.rate > 0 else None

    def describe(self, verb: str) -> str:
        """One line for people: done of total, the rate, and the time left while running.

        >>> ImageCount(300, 600, 4.0).describe("featurizing")
        'featurizing: 300/600 images (50%), 75.0 images/s, 4 s left'
        >>> ImageCount(30_000, 60_000, 400.0, final=False).describe("featurizing")
        'featurizing: 30000/60000 images (50%), 75.0 images/s, 6 min 40 s left'
        """
        share = f" ({100 * self.done // self.total}%)" if self.total else ""
        left = self.seconds_left
        eta = f", {format_duration(left)} left" if left is not None and not self.final else ""
        return f"{verb}: {self.done}/{self.total} images{share}, {self.rate:.1f} images/s{eta}"


def format_duration(seconds: float) -> str:
    """``42 s``, ``6 min 40 s``, ``2 h 05 min``.

    >>> format_duration(42.4), format_duration(400), format_duration(7500)
    ('42 s', '6 min 40 s', '2 h 05 min')
    """
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


@dataclass
class Tracking:
    """What ``track_images`` saw: why it stopped the jobs (``stop_if``'s reason), if it did."""

    stopped: str | None = None


def _images_done(spark: SparkSession, group: str, total: int) -> int:
    tracker = spark.sparkContext.statusTracker()
    finished = tasks = 0
    for job_id in tracker.getJobIdsForGroup(group):
        job = tracker.getJobInfo(job_id)
        stages = [tracker.getStageInfo(stage) for stage in job.stageIds] if job else []
        stages = [stage for stage in stages if stage is not None]
        if stages:  # the last stage is the one that runs the model and writes
            last = max(stages, key=lambda stage: stage.stageId)
            finished, tasks = finished + last.numCompletedTasks, tasks + last.numTasks
    return total * finished // tasks if tasks else 0


@contextlib.contextmanager
def track_images(spark: SparkSession, total: int, report: Callable[[ImageCount], None] | None,
                 interval: float = 0.5, stop_if: Callable[[], str | None] | None = None) -> Iterator[Tracking]:
    """Call ``report`` every ``interval`` seconds with the images done by the jobs started inside.

    The jobs started in the ``with`` block (on this thread) form one Spark job group. On leaving
    the block without an error, ``report`` gets a last count with ``final=True`` and every image done.
    ``stop_if``, asked at the same pace, cancels the group's jobs when it gives a reason (kept in
    the ``Tracking`` yielded). A Spark Connect session has no status tracker to poll: only that
    last count is reported, and ``stop_if`` is left to the caller.
    """
    from ..session import is_connect

    tracking = Tracking()
    if (report is None and stop_if is None) or is_connect(spark):
        started = time.perf_counter()
        yield tracking
        if report is not None:
            report(ImageCount(total, total, time.perf_counter() - started, final=True))
        return
    context = spark.sparkContext
    group = f"deepframes-images-{next(_GROUPS)}"
    started = time.perf_counter()
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(interval):
            try:
                reason = stop_if() if stop_if is not None else None
                if reason is not None:
                    tracking.stopped = reason
                    context.cancelJobGroup(group)
                    return
                if report is not None:
                    report(ImageCount(_images_done(spark, group, total), total, time.perf_counter() - started))
            except Exception:  # the session is stopping (Ctrl-C, a failure): no more reports
                return

    context.setJobGroup(group, f"deepframes: {total} images")
    thread = threading.Thread(target=poll, name=group, daemon=True)
    thread.start()
    try:
        yield tracking
    finally:
        stop.set()
        thread.join()
        context.setLocalProperty("spark.jobGroup.id", None)
        context.setLocalProperty("spark.job.description", None)
    if report is not None:
        report(ImageCount(total, total, time.perf_counter() - started, final=True))
