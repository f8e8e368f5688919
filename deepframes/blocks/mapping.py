"""``map_blocks`` and ``map_rows``: new columns computed by a function of blocks (or rows)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql.types import StructType

from ..core.arrays import OutputSpec, arrow_type, block_from_arrays
from ..core.batching import rebatch
from ..core.sampling import SAMPLE_ROWS, sample
from ..core.shapes import recorded_shape
from ..core.udf import append_columns, check_new_columns, map_partitions
from ..core.udf import column_udf as core_column_udf
from .execution import BlockPlan, check_row_count, map_block, map_blocks_compute, row_values
from .functions import BlockFunctionError
from .inputs import as_table, check_block_size, input_columns, make_plan

Schema = StructType | str | None


def _declared_outputs(output_schema: Schema) -> tuple[OutputSpec, ...] | None:
    if output_schema is None:
        return None
    if isinstance(output_schema, str):
        output_schema = StructType.fromDDL(output_schema)
    return tuple(
        OutputSpec.declared(field.name, field.dataType, recorded_shape(field)) for field in output_schema.fields
    )


def _infer_outputs(plan: BlockPlan, table: pa.Table) -> tuple[OutputSpec, ...]:
    """Run the function on a few rows on the driver and read the output columns off its result."""
    where = f"a sample of the first {SAMPLE_ROWS} rows, on the driver"
    batch = table.combine_chunks().to_batches()[0] if table.num_rows else None
    if batch is None:
        raise ValueError(_no_sample_message(plan))
    if plan.by_row:
        results = [plan.function.call(row, where=f"row {i} of {where}") for i, row in row_values(batch, plan)]
        if not results:
            raise ValueError(_no_sample_message(plan))
        return tuple(_infer_row_output(name, [r[name] for r in results]) for name in results[0])
    block, valid = block_from_arrays(
        {name: batch.column(i) for i, name in enumerate(plan.columns)}, plan.shape_of
    )
    if valid is not None and not valid.any():
        raise ValueError(_no_sample_message(plan))
    result = plan.function.call(block, where=where)
    num_rows = len(next(iter(block.values())))
    for name, values in result.items():
        check_row_count(plan, name, values, num_rows, where)
    return tuple(OutputSpec.infer(name, values) for name, values in result.items())


def _infer_row_output(name: str, cells: list[np.ndarray]) -> OutputSpec:
    """map_rows is for cells whose shapes vary: 1-D output cells may always vary in length;
    cells of two or more dimensions must keep one shape (they are stored flat)."""
    shapes = {np.shape(cell) for cell in cells}
    ranks = {len(shape) for shape in shapes}
    if ranks == {1}:
        longest = max(cells, key=len)
        return OutputSpec.infer(name, np.asarray(longest)[np.newaxis], variable=True)
    if len(shapes) > 1:
        raise ValueError(
            f"Output {name!r} of map_rows changes shape from row to row with {max(ranks)} "
            "dimensions; only 1-D cells may vary in length. Flatten the cells (`.ravel()`)."
        )
    return OutputSpec.infer(name, np.stack(cells))


def _no_sample_message(plan: BlockPlan) -> str:
    return (
        f"{plan.function.operation} could not infer the output columns: the first {SAMPLE_ROWS} "
        f"rows have no row without nulls in {list(plan.columns)}. Pass output_schema, e.g. "
        "output_schema='z double'."
    )


_CLASH_FIX = "Return new names from the function, or pass trim=True to keep only its outputs"


def column_udf(plan: BlockPlan):
    """The plan as one Arrow UDF of its input columns: one output column's value, or a struct of
    all of them (same rows in and out); what ``spark.udf.register`` takes."""
    return core_column_udf(functools.partial(map_blocks_compute, plan=plan), plan.columns,
                           [spec.column() for spec in plan.outputs])


def _run_spark(plan: BlockPlan, df: DataFrame) -> DataFrame:
    compute = functools.partial(map_blocks_compute, plan=plan)
    outputs = [spec.column() for spec in plan.outputs]
    if plan.trim:
        return map_partitions(df, compute, plan.columns, outputs)
    return append_columns(df, compute, plan.columns, outputs, operation=plan.function.operation, fix=_CLASH_FIX)


def _run_pandas(plan: BlockPlan, df: pd.DataFrame) -> pd.DataFrame:
    table = as_table(df, plan.columns)
    chunks: dict[str, list[pa.Array]] = {spec.name: [] for spec in plan.outputs}
    for block in rebatch(iter(table.to_batches(max_chunksize=plan.block_size or 10_000)), plan.block_size):
        for spec, column in zip(plan.outputs, map_block(block, plan)):
            chunks[spec.name].append(column)
    columns = {spec.name: _pandas_column(chunks[spec.name], spec) for spec in plan.outputs}
    if plan.trim:
        return pd.DataFrame(columns)
    return df.assign(**columns)


def _pandas_column(chunks: list[pa.Array], spec: OutputSpec) -> object:
    """Output chunks as a pandas column: NumPy values, or one array per cell in its own shape."""
    array = pa.chunked_array(chunks, type=arrow_type(spec.spark_type))
    if not spec.cell_shape:
        return array.to_numpy()
    fixed = all(size > 0 for size in spec.cell_shape)
    return [
        None if cell is None else np.asarray(cell).reshape(spec.cell_shape) if fixed else np.asarray(cell)
        for cell in array.to_pylist()
    ]


def plan_map(fn: Callable, df, columns, block_size, trim, output_schema, by_row: bool) -> BlockPlan:
    """A checked map plan: the input columns with their shapes, the output columns declared by
    ``output_schema`` or inferred by calling (a copy of) ``fn`` on the first rows."""
    operation = "map_rows" if by_row else "map_blocks"
    check_block_size(block_size)
    names = input_columns(df, columns)
    plan = make_plan(fn, df, names, operation, block_size=block_size, trim=trim, by_row=by_row)
    declared = _declared_outputs(output_schema)
    if declared is None:
        table = sample(df, names) if isinstance(df, DataFrame) else as_table(df.head(SAMPLE_ROWS), names)
        outputs = _infer_outputs(plan, table)
    else:
        outputs = declared
    return replace(plan, outputs=outputs, declared=declared is not None)


def _map(fn: Callable, df, columns, block_size, trim, output_schema, by_row: bool):
    plan = plan_map(fn, df, columns, block_size, trim, output_schema, by_row)
    if not trim:
        check_new_columns(df, [spec.name for spec in plan.outputs], plan.function.operation, _CLASH_FIX)
    if isinstance(df, pd.DataFrame):
        return _run_pandas(plan, df)
    return _run_spark(plan, df)


def map_blocks(
    fn: Callable[[dict[str, np.ndarray]], dict],
    df: DataFrame | pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    block_size: int | None = None,
    trim: bool = False,
    output_schema: Schema = None,
) -> DataFrame | pd.DataFrame:
    """Add columns computed by ``fn`` from blocks of rows.

    ``fn`` receives ``{column: array}`` for a block of rows, the block being the first dimension
    (array and vector columns are 2-D or more, shaped by the column's recorded shape), and returns
    ``{new_column: array}`` with one row per input row. NumPy functions, ``tf.function``\\ s (traced
    once per worker) and PyTorch modules work; returned tensors are converted. Rows with a null in
    an input column are not passed to ``fn`` and get nulls.

    Parameters
    ----------
    fn : callable
        ``fn(block: dict) -> dict``.
    df : pyspark.sql.DataFrame or pandas.DataFrame
        A pandas DataFrame runs locally, for debugging.
    columns : list of str, optional
        Columns passed to ``fn`` (default: all).
    block_size : int, optional
        Rows per block; default: Spark's Arrow batch size
        (``spark.sql.execution.arrow.maxRecordsPerBatch``). A partition is never loaded whole.
    trim : bool
        Return only ``fn``'s columns, which may then have any number of rows.
    output_schema : StructType or DDL string, optional
        The output columns; by default inferred by calling ``fn`` on the first rows, on the driver.

    Returns
    -------
    DataFrame
        ``df`` with the new columns (N-D outputs are flat arrays with their shape recorded).

    Examples
    --------
    >>> import deepframes
    >>> spark = deepframes.session("local[2]")
    >>> df = spark.createDataFrame([(float(x),) for x in range(10)], "x double")
    >>> out = deepframes.map_blocks(lambda block: {"z": block["x"] + 3}, df)
    >>> [row.z for row in out.orderBy("x").limit(3).collect()]
    [3.0, 4.0, 5.0]
    """
    return _map(fn, df, columns, block_size, trim, output_schema, by_row=False)


def map_rows(
    fn: Callable[[dict], dict],
    df: DataFrame | pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    trim: bool = False,
    output_schema: Schema = None,
) -> DataFrame | pd.DataFrame:
    """Like :func:`map_blocks`, one row at a time, for cells whose shapes differ between rows.

    ``fn`` receives ``{column: cell}`` (a scalar, or an array of that row's own shape) and returns
    ``{new_column: cell}``; 1-D output cells may differ in length from row to row.

    Examples
    --------
    >>> import deepframes
    >>> spark = deepframes.session("local[2]")
    >>> df = spark.createDataFrame([([1.0, 2.0],), ([1.0, 2.0, 3.0],)], "v array<double>")
    >>> out = deepframes.map_rows(lambda row: {"total": row["v"].sum()}, df)
    >>> sorted(row.total for row in out.collect())
    [3.0, 6.0]
    """
    return _map(fn, df, columns, None, trim, output_schema, by_row=True)


__all__ = ["BlockFunctionError", "map_blocks", "map_rows"]
