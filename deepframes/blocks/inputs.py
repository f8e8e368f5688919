"""Driver-side checks shared by the block operations: columns, block size, samples, errors."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame

from ..core.shapes import recorded_shape
from .execution import BlockPlan
from .functions import BlockFunction


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


def as_table(df: pd.DataFrame, columns: Sequence[str]) -> pa.Table:
    """A pandas DataFrame's columns as Arrow (cells holding arrays become list columns)."""
    frame = df[list(columns)].copy()
    for name in columns:
        if frame[name].dtype == object and len(frame) and hasattr(frame[name].iloc[0], "tolist"):
            frame[name] = [None if cell is None else cell.tolist() for cell in frame[name]]
    return pa.Table.from_pandas(frame, preserve_index=False)
