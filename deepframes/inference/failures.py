"""Rows a model could not answer: the reason in the ``error`` column, and a running count.

An inference stage with ``errors="column"`` (the default) gives a row whose model batch raises a
null output and the reason, and the job goes on; the stage merges those reasons into the
``error`` column that ``read_images`` fills for files it could not decode. ``counting_failures``
lets a long job watch the count while it runs (``--max-errors``): the stages planned inside it add
their failed rows to one Spark accumulator, which the driver sees grow as tasks finish.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from .runner import FAILURE_COLUMN

ERROR_COLUMN = "error"

_COUNTER: contextvars.ContextVar[Any] = contextvars.ContextVar("deepframes_failure_counter", default=None)


class FailureCount:
    """The rows failed so far by the jobs of the stages planned inside ``counting_failures``
    (None on a Spark Connect session, which has no accumulators)."""

    def __init__(self, accumulator: Any) -> None:
        self.accumulator = accumulator

    @property
    def value(self) -> int | None:
        return None if self.accumulator is None else int(self.accumulator.value)


@contextlib.contextmanager
def counting_failures(spark: SparkSession) -> Iterator[FailureCount]:
    """Count the rows that fail in the stages planned (``transform`` called) inside the block.

    >>> import deepframes
    >>> spark = deepframes.session("local[2]")
    >>> with counting_failures(spark) as failures:
    ...     pass
    >>> failures.value
    0
    """
    from ..session import is_connect

    accumulator = None if is_connect(spark) else spark.sparkContext.accumulator(0)
    token = _COUNTER.set(accumulator)
    try:
        yield FailureCount(accumulator)
    finally:
        _COUNTER.reset(token)


def current_counter() -> Any:
    """The accumulator of the enclosing ``counting_failures`` block, if any."""
    return _COUNTER.get()


def merge_reasons(result: DataFrame, source_columns: list[str]) -> DataFrame:
    """``result`` with the stage's failure reasons in ``error``: added, or filling the nulls of
    the ``error`` column the input already had (``read_images``')."""
    if ERROR_COLUMN in source_columns:
        return result.withColumn(ERROR_COLUMN, F.coalesce(F.col(ERROR_COLUMN), F.col(FAILURE_COLUMN))).drop(FAILURE_COLUMN)
    return result.withColumnRenamed(FAILURE_COLUMN, ERROR_COLUMN)


__all__ = ["ERROR_COLUMN", "FailureCount", "counting_failures", "current_counter", "merge_reasons"]
