"""Photos that keep arriving: a watched folder classified with Spark Structured Streaming.

Each photo that lands in the folder gets one line in the output folder (JSON lines, or
Parquet), written exactly once: the query's checkpoint (``OUT/_checkpoint``) records which files
were read and which batches were written, so a watch stopped (Ctrl-C) and started again
neither repeats nor skips a photo. Read the output with Spark (``spark.read.json(OUT)``), which
follows the file sink's log (``OUT/_spark_metadata``) and so ignores the files of a batch that
was interrupted before it committed.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from pyspark.ml import Transformer
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from .. import storage
from ..images.stream import stream_images
from ..inference.pipeline import compile_pipeline
from ..inference.stage import apply_plan
from .errors import InputError
from .novelty import guard_model
from .train import load_model

logger = logging.getLogger(__name__)

CHECKPOINT = "_checkpoint"
FORMATS = ("json", "parquet")
# How often the folder is listed for new photos, and the running count refreshed.
POLL_SECONDS = 2.0


@dataclass
class WatchResult:
    """What one run of a watch predicted."""

    out: str
    num_photos: int
    num_batches: int
    seconds: float

    def as_dict(self) -> dict:
        return {"out": self.out, "num_photos": self.num_photos, "num_batches": self.num_batches,
                "seconds": round(self.seconds, 2)}


def predictions_frame(model: Transformer, photos: DataFrame, top: int = 3, column: str = "content") -> DataFrame:
    """``path, label, probability, predictions`` for a (streaming or static) DataFrame of encoded
    photos: the pipeline interpreter's plan (network, classifier, labels in one batch), so the
    answers are those of ``predict`` and the SQL function.

    ``predictions`` holds the ``top`` classes as ``(label, probability)``, best first; a photo
    that cannot be decoded, or that the network fails on, gets nulls and the reason in ``error``.
    """
    if not isinstance(top, int) or top < 1:
        raise InputError(f"--top must be a positive integer; got {top}.")
    try:
        plan = compile_pipeline(model, top=top)
    except (TypeError, ValueError) as error:
        raise InputError(f"The model cannot classify photos: {error}") from None
    if plan.top_k is None:
        raise InputError("The model cannot classify photos: it gives features, not classes. Give a model "
                         "folder written by 'deepframes train' on images.")
    (output,) = plan.outputs
    plan = replace(
        plan.shipped(photos.sparkSession),
        inputs=(replace(plan.inputs[0], column=column),),
        outputs=(replace(output, spec=replace(output.spec, name="predictions")),),
        top_k=replace(plan.top_k, label_only=False),
    )
    best = F.col("predictions")[0]
    return apply_plan(photos, plan, "predict", errors="column").select(
        "path", best["label"].alias("label"), best["probability"].alias("probability"), "predictions", "error")


def check_watch_output(out: str) -> None:
    """Refuse a local ``--out`` that holds something other than an earlier watch's output (before
    Spark starts); other file systems are checked once the session is up."""
    if storage.is_local(out):
        _check_output(None, out)


def _check_output(spark: SparkSession | None, out: str) -> None:
    if storage.is_local(out):
        import os

        path = storage.local_path(out)
        taken = os.path.exists(path) and (not os.path.isdir(path) or (
            os.listdir(path) and not os.path.isdir(os.path.join(path, CHECKPOINT))))
    else:
        taken = _exists(spark, out) and not _exists(spark, storage.join(out, CHECKPOINT))
    if taken:
        raise InputError(
            f"Output {out} already exists and is not the output of an earlier watch (no {CHECKPOINT}/ in it); "
            "expected a new or empty folder, or one to resume. Choose another --out."
        )


def _exists(spark: SparkSession, uri: str) -> bool:
    try:
        return storage.exists(spark, uri)
    except ValueError as error:  # no file system for the scheme
        raise InputError(str(error)) from None


@contextlib.contextmanager
def _interrupt_sets(stop: threading.Event) -> Iterator[None]:
    """While the watch runs, Ctrl-C asks it to stop between two polls instead of raising inside a
    call into Spark (which would leave py4j's traceback and a half-cancelled batch); a second
    Ctrl-C raises at once. Only the main thread can catch signals: elsewhere, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_interrupt(signum, frame) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _Count:
    """The running count of photos read, from the query's progress reports (one per batch)."""

    def __init__(self) -> None:
        self.rows_by_batch: dict[int, int] = {}

    def update(self, query) -> list[tuple[int, int]]:
        """New batches with photos since the last call, as ``(batch id, photos)``."""
        new = []
        for progress in query.recentProgress:
            # The property, not the key: a Connect session's reports leave the key empty and
            # keep the counts per source.
            batch, rows = int(progress.batchId), int(progress.numInputRows)
            if rows and batch not in self.rows_by_batch:
                self.rows_by_batch[batch] = rows
                new.append((batch, rows))
        return new

    @property
    def num_photos(self) -> int:
        return sum(self.rows_by_batch.values())


def watch_predictions(
    model_dir: str,
    folder: str,
    out: str,
    *,
    top: int = 3,
    once: bool = False,
    output_format: str = "json",
    max_files_per_trigger: int | None = None,
    reject_threshold: float | None = None,
    spark: SparkSession,
    progress: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> WatchResult:
    """Classify the photos in ``folder`` and those that land there later, one output line each.

    Parameters
    ----------
    model_dir : str
        A model folder written by ``deepframes train`` on images (any Hadoop URI).
    folder : str
        The folder to watch (any Hadoop URI). Photos must appear whole: move them in.
    out : str
        The output folder (any Hadoop URI): ``part-*`` files with ``path``, ``label``,
        ``probability`` and ``predictions`` (the ``top`` classes), the file sink's log
        ``_spark_metadata/`` and the checkpoint ``_checkpoint/``. Give the same ``out`` to resume.
    once : bool
        Predict the photos that are there now, then stop (``availableNow``); otherwise watch until
        ``stop`` is set or Ctrl-C (KeyboardInterrupt, re-raised once the query has stopped).
    output_format : {"json", "parquet"}
    max_files_per_trigger : int, optional
        At most this many photos per batch.
    reject_threshold : float, optional
        Overrides the model's "not recognised" threshold (``--reject-threshold``); a photo not
        recognised gets nulls, as one that cannot be decoded.
    spark : SparkSession
        A classic or Spark Connect session.
    progress : callable, optional
        Called with a line after every batch: the running count.
    stop : threading.Event, optional
        Set it (from another thread) to stop the watch after the batch in progress.

    Returns
    -------
    WatchResult
        What this run predicted (photos predicted by earlier runs are not counted again).
    """
    started = time.perf_counter()
    if output_format not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}; got {output_format!r}.")
    _check_output(spark, out)
    if not _exists(spark, folder):
        raise InputError(f"--watch folder {folder} does not exist; expected a folder to watch. Create it first.")
    model = load_model(model_dir)
    guard_model(model, model_dir, reject_threshold)
    try:
        photos = stream_images(folder, decode=False, max_files_per_trigger=max_files_per_trigger, spark=spark)
    except ValueError as error:
        raise InputError(str(error)) from None
    writer = (predictions_frame(model, photos, top).writeStream.format(output_format)
              .option("path", out).option("checkpointLocation", storage.join(out, CHECKPOINT)))
    writer = writer.trigger(availableNow=True) if once else writer.trigger(processingTime=f"{POLL_SECONDS} seconds")
    query = writer.start()
    count = _Count()
    interrupted = threading.Event()
    try:
        with _interrupt_sets(interrupted):
            while True:
                finished = query.awaitTermination(POLL_SECONDS)
                for batch, rows in count.update(query):
                    line = f"batch {batch}: {rows} photos; {count.num_photos} predicted since start"
                    logger.info(line)
                    if progress:
                        progress(line)
                if finished or interrupted.is_set() or (stop is not None and stop.is_set()):
                    break
    finally:
        if query.isActive:
            query.stop()
    if interrupted.is_set():
        raise KeyboardInterrupt
    error = query.exception()
    if error is not None:
        raise RuntimeError(f"The watch stopped on an error: {error}")
    count.update(query)
    return WatchResult(str(out), count.num_photos, len(count.rows_by_batch), time.perf_counter() - started)


__all__ = ["CHECKPOINT", "WatchResult", "check_watch_output", "predictions_frame", "watch_predictions"]
