"""Tensor shapes of DataFrame columns, kept in Spark column metadata: the one place that reads
and writes them, for block functions and inference stages alike.

A column's shape is the shape of a block of it: the first dimension is the row count (unknown,
written ``?``), the rest is the shape of one cell: ``features: float32[?, 512]``.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.ml.linalg import VectorUDT
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    ByteType,
    DataType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    ShortType,
    StringType,
    StructField,
)

SHAPE_KEY = "deepframes.shape"
UNKNOWN = -1

DTYPE_NAMES = {
    DoubleType: "float64",
    FloatType: "float32",
    LongType: "int64",
    IntegerType: "int32",
    ShortType: "int16",
    ByteType: "int8",
    BooleanType: "bool",
    StringType: "string",
    BinaryType: "binary",
}


def element_type(data_type: DataType) -> tuple[DataType, int]:
    """The innermost element type of (nested) arrays and the nesting depth; vectors are doubles."""
    depth = 0
    while isinstance(data_type, ArrayType):
        data_type, depth = data_type.elementType, depth + 1
    if isinstance(data_type, VectorUDT):
        return DoubleType(), depth + 1
    return data_type, depth


def dtype_name(data_type: DataType) -> str:
    """``float32`` for FloatType and for arrays of it, ``float64`` for vectors, ..."""
    inner, _ = element_type(data_type)
    return DTYPE_NAMES.get(type(inner), inner.simpleString())


def recorded_shape(field: StructField) -> list[int] | None:
    """The block shape recorded on a column (``-1`` for unknown dimensions), or None."""
    shape = (field.metadata or {}).get(SHAPE_KEY)
    return None if shape is None else [int(size) for size in shape]


def column_shape(field: StructField) -> list[int]:
    """The recorded shape, else what the type alone tells (``[?]`` for scalars, ``[?, ?]`` ...)."""
    shape = recorded_shape(field)
    if shape is not None:
        return shape
    return [UNKNOWN] * (1 + element_type(field.dataType)[1])


def format_shape(shape: Sequence[int]) -> str:
    """``[-1, 512]`` -> ``[?, 512]``."""
    return "[" + ", ".join("?" if size < 0 else str(size) for size in shape) + "]"


def normalize_shape(column: str, shape: Sequence[int | None]) -> list[int]:
    sizes = [UNKNOWN if size in (None, UNKNOWN, "?") else size for size in shape]
    if not sizes or sizes[0] != UNKNOWN:
        raise ValueError(
            f"The shape of column {column!r} must start with the row dimension, written None: "
            f"e.g. [None, 512]. Received: {list(shape)}"
        )
    if not all(isinstance(size, int) and (size > 0 or size == UNKNOWN) for size in sizes):
        raise ValueError(
            f"Shape sizes must be positive integers or None. Received for {column!r}: {list(shape)}"
        )
    return sizes


def with_shapes(df, shapes: dict[str, Sequence[int]]):
    """``df`` with each column's block shape recorded (other metadata kept)."""
    for name, shape in shapes.items():
        df = df.withMetadata(name, {**(df.schema[name].metadata or {}), SHAPE_KEY: list(shape)})
    return df
