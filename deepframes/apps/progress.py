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

    def describe(self, verb: str) -> str:
        """One line for people.

        >>> ImageCount(300, 600, 4.0).describe("featurizing")
        'featurizing: 300/600 images (50%), 75.0 images/s'
        """
        share = f" ({100 * self.done // self.total}%)" if self.total else ""
        return f"{verb}: {self.done}/{self.total} images{share}, {self.rate:.1f} images/s"


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
                 interval: float = 0.5) -> Iterator[None]:
    """Call ``report`` every ``interval`` seconds with the images done by the jobs started inside.

    The jobs started in the ``with`` block (on this thread) form one Spark job group. On leaving
    the block without an error, ``report`` gets a last count with ``final=True`` and every image done.
    A Spark Connect session has no status tracker to poll: only that last count is reported.
    """
    from ..session import is_connect

    if report is None:
        yield
        return
    if is_connect(spark):
        started = time.perf_counter()
        yield
        report(ImageCount(total, total, time.perf_counter() - started, final=True))
        return
    context = spark.sparkContext
    group = f"deepframes-images-{next(_GROUPS)}"
    started = time.perf_counter()
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(interval):
            try:
                done = _images_done(spark, group, total)
            except Exception:  # the session is stopping (Ctrl-C, a failure): no more reports
                return
            report(ImageCount(done, total, time.perf_counter() - started))

    context.setJobGroup(group, f"deepframes: {total} images")
    thread = threading.Thread(target=poll, name=group, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        context.setLocalProperty("spark.jobGroup.id", None)
        context.setLocalProperty("spark.job.description", None)
    report(ImageCount(total, total, time.perf_counter() - started, final=True))
