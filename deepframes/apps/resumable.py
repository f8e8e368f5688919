"""Batch outputs that grow while the job runs and continue after a crash (``--resume``).

Spark writes the rows with Hadoop's ``FileOutputCommitter`` algorithm 2: each task moves its
finished part file into the output folder when it commits, so a run killed at any moment (even
with SIGKILL) leaves whole part files there and never a half-written one; what running tasks
were writing stays under ``_temporary/``, which readers skip and a resumed run removes. Every
input file gets a row (a failed one with its reason in ``error``), so the part files record
which inputs they cover: a resumed run lists its inputs again and reads only the files that no
part covers.

The folder records the options of its run (``_deepframes.options.json``) and, while the run is
unfinished, holds ``_deepframes.running``. ``--resume`` refuses a folder written with other options; without ``--resume`` the folder is
refused, so an interrupted run is never replaced by accident. A finished folder is replaced by a
new run, as every deepframes output is, or continued with ``--resume`` (the files added since).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession

from .. import storage
from ..inference.failures import FailureCount, counting_failures
from .errors import InputError
from .outputs import MARKER, check_output
from .progress import ImageCount, track_images

RUNNING = "_deepframes.running"
OPTIONS = "_deepframes.options.json"  # what a resumed run must share with the run it continues
# Task commits move part files straight into the output folder; no _SUCCESS file per job (the
# output is finished when RUNNING goes, not when one job ends).
COMMITTER = {"mapreduce.fileoutputcommitter.algorithm.version": "2",
             "mapreduce.fileoutputcommitter.marksuccessfuljobs": "false"}


class TooManyFailures(RuntimeError):
    """More rows failed than ``--max-errors`` allows; the job was stopped (its parts are kept)."""


@dataclass
class ResumableOutput:
    """An output folder open for writing: where, with which options, and the inputs already done."""

    out: str
    options: dict
    output_format: str = "parquet"
    done: set[str] = field(default_factory=set)

    def uri(self, name: str) -> str:
        return storage.join(self.out, name)


def open_output(out: str, options: dict, *, resume: bool, spark: SparkSession,
                output_format: str = "parquet") -> ResumableOutput:
    """Prepare ``out`` for a run with ``options``: continue the run there (``resume``: an
    unfinished one, or a finished one to add the inputs that arrived since), or start afresh."""
    out = check_output(out, spark)
    output = ResumableOutput(out, options, output_format)
    unfinished = storage.exists(spark, output.uri(RUNNING))
    if unfinished and not resume:
        raise InputError(
            f"Output {out} holds an unfinished run (interrupted or failed); add --resume to continue it, "
            "or choose another --out."
        )
    recorded = resume and storage.exists(spark, output.uri(OPTIONS))
    if recorded:
        _check_same_options(out, json.loads(storage.read_text(spark, output.uri(OPTIONS))), options)
        storage.delete(spark, output.uri("_temporary"))  # what tasks were writing when the run stopped
        output.done = covered_inputs(spark, out, output_format)
    elif storage.exists(spark, out):
        storage.delete(spark, out)  # a finished deepframes output (check_output refused anything else)
    storage.write_text(spark, output.uri(MARKER), "written by deepframes; safe to replace with a new run\n")
    storage.write_text(spark, output.uri(OPTIONS), json.dumps(options, indent=2, sort_keys=True))
    storage.write_text(spark, output.uri(RUNNING), "a run is writing here; --resume continues it\n")
    return output


def _check_same_options(out: str, recorded: dict, options: dict) -> None:
    differ = [key for key in sorted(set(recorded) | set(options)) if recorded.get(key) != options.get(key)]
    if differ:
        changes = "; ".join(f"{key} was {recorded.get(key)!r}, now {options.get(key)!r}" for key in differ)
        raise InputError(
            f"--resume: {out} was written with other options ({changes}); run with the same options "
            "to continue it, or choose another --out."
        )


def row_path(uri: str) -> str:
    """An input file as its rows name it (Spark's ``path`` column): ``file:///x`` -> ``file:/x``.

    >>> row_path("file:///data/a.jpg"), row_path("hdfs://nn:8020/a.jpg")
    ('file:/data/a.jpg', 'hdfs://nn:8020/a.jpg')
    """
    return re.sub(r"^([A-Za-z][\w+.-]*):///", r"\1:/", uri)


def pending(paths: list[str], output: ResumableOutput) -> list[str]:
    """The input files (listed as Spark lists them) that no part of ``output`` covers yet."""
    return [path for path in paths if row_path(path) not in output.done] if output.done else paths


def covered_inputs(spark: SparkSession, out: str, output_format: str = "parquet") -> set[str]:
    """The input paths the part files in ``out`` hold a row for."""
    try:
        parts = spark.read.format(output_format).load(out)
    except AnalysisException:  # no part file yet
        return set()
    if "path" not in parts.columns:
        return set()
    return set(parts.select("path").toArrow().column(0).to_pylist())


def parse_max_errors(text: str | None) -> float | None:
    """``--max-errors``: a count of rows (``10``) or a share of them (``0.02``); None: no limit.

    >>> parse_max_errors("10"), parse_max_errors("0.02"), parse_max_errors(None)
    (10, 0.02, None)
    """
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0 or (value >= 1 and value != int(value)) or math.isnan(value):
        raise InputError(
            f"--max-errors must be a number of rows (0, 1, 2, ...) or a share of them below 1 (0.02); got {text!r}."
        )
    return int(value) if value >= 1 or value == 0 else value


def error_limit(max_errors: float | None, num_rows: int) -> int | None:
    """The number of failed rows ``max_errors`` allows out of ``num_rows``.

    >>> error_limit(0.02, 600), error_limit(5, 600), error_limit(None, 600)
    (12, 5, None)
    """
    if max_errors is None:
        return None
    return int(max_errors) if max_errors >= 1 or max_errors == 0 else int(max_errors * num_rows)


def write_rows(rows: Callable[[], DataFrame], output: ResumableOutput, total: int, *, spark: SparkSession,
               progress: Callable[[ImageCount], None] | None = None, max_errors: int | None = None) -> None:
    """Append the rows ``rows()`` plans (``total`` of them) to the output, task by task; stop with
    ``TooManyFailures`` once more than ``max_errors`` rows failed (checked as tasks finish; at the
    end on Spark Connect, which has no accumulators)."""
    with counting_failures(spark) as failures:
        frame = rows()  # planned inside the block, so the stages' failed rows are counted
        stop = _failure_limit(failures, max_errors)
        with track_images(spark, total, progress, stop_if=stop) as tracked:
            try:
                frame.write.options(**COMMITTER).mode("append").format(output.output_format).save(output.out)
            except Exception:
                if tracked.stopped:
                    raise TooManyFailures(tracked.stopped) from None
                raise
    if stop is not None and (reason := stop()):
        raise TooManyFailures(reason)


def _failure_limit(failures: FailureCount, max_errors: int | None) -> Callable[[], str | None] | None:
    if max_errors is None:
        return None

    def exceeded() -> str | None:
        failed = failures.value
        if failed is not None and failed > max_errors:
            return (f"{failed} rows failed, more than --max-errors {max_errors}; the job stopped (the rows "
                    "written so far are kept: fix the cause, then run again with --resume).")
        return None

    return exceeded


def finish_output(output: ResumableOutput, spark: SparkSession, files: dict[str, str] | None = None) -> None:
    """Write the output's own small files (a sidecar), then mark the run finished."""
    for name, text in (files or {}).items():
        storage.write_text(spark, output.uri(name), text)
    storage.delete(spark, output.uri(RUNNING))


def is_unfinished(spark: SparkSession | None, out: str) -> bool:
    """Whether ``out`` holds a run that has not finished (it needs ``--resume``)."""
    return storage.exists(spark, storage.join(out, RUNNING))


__all__ = ["RUNNING", "ResumableOutput", "TooManyFailures", "covered_inputs", "error_limit", "finish_output",
           "is_unfinished", "open_output", "parse_max_errors", "pending", "row_path", "write_rows"]
