"""``reduce_blocks``, ``reduce_rows`` and ``aggregate``: columns reduced to NumPy values."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame, GroupedData
from pyspark.sql.types import StructField, StructType

from ..core.arrays import OutputSpec, block_to_arrow
from ..core.sampling import sample
from ..core.shapes import with_shapes
from .execution import (
    BlockPlan,
    finish_reduce,
    partial_results,
    reduce_blocks_local,
    reduce_record_batches,
    reduce_rows_local,
)
from .inputs import as_table, check_block_size, input_columns, make_plan

def _empty_error(plan: BlockPlan) -> ValueError:
    return ValueError(
        f"{plan.function.operation}: the DataFrame has no row without nulls in "
        f"{list(plan.columns)}, so there is nothing to reduce."
    )


def _reduce(plan: BlockPlan, df: DataFrame | pd.DataFrame) -> dict[str, np.ndarray]:
    if isinstance(df, pd.DataFrame):
        batches = iter(as_table(df, plan.columns).to_batches(max_chunksize=plan.block_size or 10_000))
        local = reduce_rows_local if plan.by_row else reduce_blocks_local
        result = finish_reduce([p for p in [local(batches, plan)] if p is not None], plan)
    else:
        job = df.select(*plan.columns).mapInArrow(
            functools.partial(reduce_record_batches, plan=plan), "partial binary"
        )
        partials = partial_results([row.partial for row in job.collect()])
        result = finish_reduce(partials, plan)
    if result is None:
        raise _empty_error(plan)
    return result


def reduce_blocks(
    fn: Callable[[dict[str, np.ndarray]], dict],
    df: DataFrame | pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    block_size: int | None = None,
) -> dict[str, np.ndarray]:
    """Reduce columns to one value each with ``fn``, a block at a time, in parallel.

    ``fn`` receives ``{column: array}`` for a block of rows and returns ``{column: value}`` for
    the same columns. Partial results (one per block, then one per partition) are stacked along a
    new first axis and reduced by calling ``fn`` again: on the executors, then on the driver. So
    ``fn`` **must be associative and commutative**: ``np.sum``, ``np.min`` and ``np.max`` along
    axis 0 are; a mean is not (reduce a sum and a count, or a mean weighted by a count column).
    Rows with a null in any of the columns are skipped.

    Parameters
    ----------
    fn : callable
        ``fn(block: dict) -> dict`` with the same keys.
    df : pyspark.sql.DataFrame or pandas.DataFrame
    columns : list of str, optional
        The columns to reduce (default: all).
    block_size : int, optional
        Rows per block (default: the Arrow batches as Spark sends them,
        ``spark.sql.execution.arrow.maxRecordsPerBatch`` rows).

    Returns
    -------
    dict of str to numpy.ndarray

    Raises
    ------
    BlockFunctionError
        When ``fn`` raises (naming it and the block) or returns other columns than it reads.

    Examples
    --------
    >>> import deepframes
    >>> spark = deepframes.session("local[2]")
    >>> df = spark.createDataFrame([(1.0, 2), (3.0, 4)], "x double, y long")
    >>> deepframes.reduce_blocks(lambda b: {"x": b["x"].sum(0), "y": b["y"].max(0)}, df)
    {'x': array(4.), 'y': array(4)}
    """
    check_block_size(block_size)
    names = input_columns(df, columns)
    return _reduce(make_plan(fn, df, names, "reduce_blocks", block_size=block_size), df)


def reduce_rows(
    fn: Callable[[dict, dict], dict],
    df: DataFrame | pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Fold rows pairwise with ``fn(a, b)``, where ``a`` and ``b`` are ``{column: cell}``.

    ``fn`` must be associative and commutative; rows with a null are skipped. One Python call per
    row: prefer :func:`reduce_blocks` when cells have one shape.

    Examples
    --------
    >>> import deepframes
    >>> spark = deepframes.session("local[2]")
    >>> df = spark.createDataFrame([(1.0,), (2.0,), (4.0,)], "x double")
    >>> float(deepframes.reduce_rows(lambda a, b: {"x": a["x"] + b["x"]}, df)["x"])
    7.0
    """
    names = input_columns(df, columns)
    return _reduce(make_plan(fn, df, names, "reduce_rows", by_row=True), df)


# ---- grouped -------------------------------------------------------------------------------


def _reduce_group(plan: BlockPlan, keys: tuple, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    columns = [batch.select(list(plan.columns)) for batch in batches]
    result = finish_reduce([p for p in [reduce_blocks_local(iter(columns), plan)] if p is not None], plan)
    if result is None:
        return
    arrays = [pa.array([key.as_py()], type=key.type) for key in keys]  # int keys stay int32/int16
    for spec in plan.outputs:
        arrays.append(block_to_arrow(spec.check(np.asarray(result[spec.name])[np.newaxis], False), spec))
    names = [f"__key{index}" for index in range(len(keys))] + [spec.name for spec in plan.outputs]
    yield pa.RecordBatch.from_arrays(arrays, names=names)


def _group_function(plan: BlockPlan) -> Callable:
    # Spark picks the streaming (iterator) form of applyInArrow from these type hints.
    def reduce_group(keys: tuple, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        return _reduce_group(plan, keys, batches)

    return reduce_group


def aggregate(
    fn: Callable[[dict[str, np.ndarray]], dict],
    df: DataFrame | pd.DataFrame,
    *,
    by: str | Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
) -> DataFrame | pd.DataFrame:
    """:func:`reduce_blocks` within each group of rows that share the values of ``by``.

    Returns a DataFrame with the grouping columns and one column per reduced column. Groups are
    streamed block by block, never held in memory whole.

    Parameters
    ----------
    fn : callable
        ``fn(block: dict) -> dict`` with the same keys, associative and commutative.
    df : pyspark.sql.DataFrame or pandas.DataFrame
    by : str or list of str
        The grouping columns (TensorFrames' ``aggregate(fn, df.groupBy("key"))`` is
        ``aggregate(fn, df, by="key")`` here).
    columns : list of str, optional
        The columns to reduce (default: all but ``by``).

    Examples
    --------
    >>> import deepframes
    >>> spark = deepframes.session("local[2]")
    >>> df = spark.createDataFrame([("a", 1.0), ("a", 2.0), ("b", 5.0)], "key string, x double")
    >>> out = deepframes.aggregate(lambda b: {"x": b["x"].sum(0)}, df, by="key")
    >>> sorted((row.key, row.x) for row in out.collect())
    [('a', 3.0), ('b', 5.0)]
    """
    if isinstance(df, GroupedData):
        raise TypeError(
            "aggregate takes the DataFrame and its grouping columns, not a GroupedData: "
            "aggregate(fn, df, by='key') instead of aggregate(fn, df.groupBy('key'))."
        )
    if not by:
        raise ValueError("aggregate needs the grouping columns: aggregate(fn, df, by='key'). Received: by=None")
    keys = [by] if isinstance(by, str) else list(by)
    input_columns(df, keys)
    if isinstance(df, pd.DataFrame):
        return _aggregate_pandas(fn, df, keys, columns)
    names = input_columns(df, columns, exclude=keys)
    plan = make_plan(fn, df, names, "aggregate")
    outputs = _infer_reduced(plan, sample(df, names))
    plan = replace(plan, outputs=outputs)
    key_fields = [df.schema[name] for name in keys]
    schema = StructType(
        [StructField(f"__key{index}", field.dataType, True) for index, field in enumerate(key_fields)]
        + [StructField(spec.name, spec.spark_type, True) for spec in outputs]
    )
    result = df.groupBy(*keys).applyInArrow(_group_function(plan), schema)
    result = result.toDF(*keys, *[spec.name for spec in outputs])
    return with_shapes(result, {spec.name: spec.block_shape for spec in outputs if spec.cell_shape})


def _infer_reduced(plan: BlockPlan, table: pa.Table) -> tuple[OutputSpec, ...]:
    partial = reduce_blocks_local(iter(table.to_batches()), plan)
    if partial is None:
        raise _empty_error(plan)
    return tuple(OutputSpec.infer(name, np.asarray(value)[np.newaxis]) for name, value in partial.items())


def _aggregate_pandas(fn, frame: pd.DataFrame, keys: list[str], columns) -> pd.DataFrame:
    names = input_columns(frame, columns, exclude=keys)
    rows = []
    for key, group in frame.groupby(keys):
        result = reduce_blocks(fn, group, columns=names)
        key_values = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(keys, key_values)), **{name: value[()] if np.ndim(value) == 0 else value for name, value in result.items()}})
    return pd.DataFrame(rows)


__all__ = ["aggregate", "reduce_blocks", "reduce_rows"]
