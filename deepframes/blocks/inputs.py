"""Driver-side checks shared by the block operations: columns, block size, samples, errors."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import pandas as pd
import pyarrow as pa
from pyspark.errors import PythonException
from pyspark.sql import DataFrame

from .execution import BlockPlan
from .functions import BlockFunction, BlockFunctionError
from .shapes import recorded_shape

# Rows read on the driver to infer output schemas: never a full pass.
SAMPLE_ROWS = 16


def check_block_size(block_size: int | None) -> None:
    if block_size is not None and (not isinstance(block_size, int) or block_size < 1):
        raise ValueError(
            "Invalid value received for argument `block_size`. Expected a positive integer or "
            f"None. Received: block_size={block_size!r}"
        )


def input_columns(df: DataFrame | pd.DataFrame, columns: Sequence[str] | None, exclude: Sequence[str] = ()) -> tuple[str, ...]:
    """The columns a block function reads, checked to exist."""
    available = list(df.columns)
    if isinstance(columns, str):
        columns = [columns]
    names = [name for name in available if name not in exclude] if columns is None else list(columns)
    missing = [name for name in names if name not in available]
    if missing:
        raise ValueError(
            f"Column(s) {missing} are not in the DataFrame. Available columns: {available}"
        )
    if not names:
        raise ValueError("A block function needs at least one input column; none were selected.")
    return tuple(names)


def make_plan(fn, df: DataFrame | pd.DataFrame, columns: tuple[str, ...], operation: str, **options) -> BlockPlan:
    shapes = (
        tuple(_tuple(recorded_shape(df.schema[name])) for name in columns)
        if isinstance(df, DataFrame)
        else (None,) * len(columns)
    )
    return BlockPlan(BlockFunction.wrap(fn, operation), columns, shapes, **options)


def _tuple(shape: list[int] | None) -> tuple[int, ...] | None:
    return None if shape is None else tuple(shape)


def _first_rows_as_ipc(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """A partition's first SAMPLE_ROWS rows as one Arrow IPC blob; reads no further."""
    taken, rows = [], 0
    for batch in batches:
        taken.append(batch.slice(0, SAMPLE_ROWS - rows))
        rows += taken[-1].num_rows
        if rows >= SAMPLE_ROWS:
            break
    if rows:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, taken[0].schema) as writer:
            for batch in taken:
                writer.write_batch(batch)
        yield pa.RecordBatch.from_arrays([pa.array([sink.getvalue().to_pybytes()])], names=["ipc"])


def sample(df: DataFrame, columns: Sequence[str]) -> pa.Table:
    """The first rows of ``columns`` exactly as executors see them in Arrow, read on the driver.

    The limit comes after the Arrow conversion, so Spark computes only as many partitions as it
    needs to find rows (no full pass, and no shuffle of the whole DataFrame into one task).
    """
    rows = df.select(*columns).mapInArrow(_first_rows_as_ipc, "ipc binary").limit(1).collect()
    batches = [batch for row in rows for batch in pa.ipc.open_stream(row.ipc)]
    if not batches:
        return pa.table({name: pa.array([], pa.null()) for name in columns})
    return pa.Table.from_batches(batches)


def as_table(df: pd.DataFrame, columns: Sequence[str]) -> pa.Table:
    """A pandas DataFrame's columns as Arrow (cells holding arrays become list columns)."""
    frame = df[list(columns)].copy()
    for name in columns:
        if frame[name].dtype == object and len(frame) and hasattr(frame[name].iloc[0], "tolist"):
            frame[name] = [None if cell is None else cell.tolist() for cell in frame[name]]
    return pa.Table.from_pandas(frame, preserve_index=False)


_BLOCK_ERROR = re.compile(r"(?:BlockFunctionError|UnequalCellsError|ValueError|TypeError): (.*)")


def raise_from_executor(error: PythonException, operation: str) -> None:
    """Re-raise an executor failure of a block operation as its own one-line error."""
    lines = [match.group(1) for match in _BLOCK_ERROR.finditer(str(error))]
    ours = [line for line in lines if line.startswith(operation) or "Column " in line or "Output " in line]
    if ours:
        raise BlockFunctionError(ours[-1]) from None
    raise error
