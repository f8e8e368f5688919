"""Recording and reading column shapes: ``append_shape``, ``analyze``, ``print_schema``.

A column's shape is the shape of a block of it: the first dimension is the row count (unknown,
written ``?``), the rest is the shape of one cell: ``features: float32[?, 512]``.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.ml.linalg import VectorUDT
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DataType, StructField

from ..core.shapes import (
    SHAPE_KEY,
    UNKNOWN,
    column_shape,
    dtype_name,
    element_type,
    format_shape,
    normalize_shape,
)


def column_name(df: DataFrame, column: str | Column) -> str:
    """The name of a column of ``df`` given by name or as a ``Column`` (``F.col("x")``, ``df.x``)."""
    if isinstance(column, str):
        return column
    if not isinstance(column, Column):
        raise TypeError(
            "Expected a column name (str) or a Column (e.g. F.col('x') or df['x']). Received: "
            f"{type(column).__name__} {column!r}"
        )
    name = df.select(column).columns[0]  # resolves the reference; runs no job
    if name not in df.columns:
        raise ValueError(
            f"The Column {name!r} is an expression, not a column of the DataFrame; a shape is "
            f"recorded on a column. Available columns: {df.columns}. Add it first, e.g. "
            f"df.withColumn('name', expression), then pass 'name'."
        )
    return name


def append_shape(df: DataFrame, column: str | Column, shape: Sequence[int | None]) -> DataFrame:
    """Record the block shape of ``column`` (a name or a ``Column``) without reading any data.

    Examples
    --------
    >>> import deepframes
    >>> from pyspark.sql import functions as F
    >>> spark = deepframes.session("local[2]")
    >>> df = spark.createDataFrame([([1.0, 2.0],)], "v array<float>")
    >>> print_schema(append_shape(df, "v", [None, 2]))
    v: float32[?, 2]
    >>> print_schema(append_shape(df, F.col("v"), [None, 2]))  # as TensorFrames took it
    v: float32[?, 2]
    """
    column = column_name(df, column)
    field = _field(df, column)
    sizes = normalize_shape(column, shape)
    depth = element_type(field.dataType)[1]
    if len(sizes) - 1 < depth or (depth == 0 and len(sizes) != 1):
        raise ValueError(
            f"Column {column!r} ({field.dataType.simpleString()}) needs a shape of rank at least "
            f"{depth + 1}. Received: {format_shape(sizes)}"
        )
    return df.withMetadata(column, {**(field.metadata or {}), SHAPE_KEY: sizes})


def _field(df: DataFrame, column: str) -> StructField:
    try:
        return df.schema[column]
    except (KeyError, IndexError):
        raise ValueError(
            f"Column {column!r} is not in the DataFrame. Available columns: {df.columns}"
        ) from None


def _cell_size_bounds(column: str, data_type: DataType) -> list[tuple[Column, Column]]:
    """(min, max) aggregate expressions of the cell size at each nesting level of a column."""
    if isinstance(data_type, VectorUDT):
        from pyspark.ml.functions import vector_to_array

        sizes = F.size(vector_to_array(F.col(column)))
        return [(F.min(sizes), F.max(sizes))]
    bounds = []
    level, current = F.col(column), data_type
    if isinstance(current, ArrayType):
        bounds.append((F.min(F.size(level)), F.max(F.size(level))))
        current = current.elementType
    while isinstance(current, ArrayType):
        # Every inner array of every row is measured, not only the first.
        inner_sizes = F.transform(level, lambda cell: F.size(cell))
        bounds.append((F.min(F.array_min(inner_sizes)), F.max(F.array_max(inner_sizes))))
        level, current = F.flatten(level), current.elementType
    return bounds


def analyze(df: DataFrame, columns: Sequence[str | Column] | None = None) -> DataFrame:
    """Measure the cell shapes of ``columns`` (default: all) in one pass and record them.

    A dimension whose size is the same in every row is recorded; one that varies stays ``?``.

    Examples
    --------
    >>> import deepframes
    >>> spark = deepframes.session("local[2]")
    >>> df = spark.createDataFrame([([1.0, 2.0, 3.0], 1.0), ([4.0, 5.0, 6.0], 2.0)], "v array<double>, x double")
    >>> print_schema(analyze(df))
    v: float64[?, 3]
    x: float64[?]
    """
    if isinstance(columns, (str, Column)):
        columns = [columns]
    names = [column_name(df, column) for column in columns] if columns is not None else df.columns
    fields = {name: _field(df, name) for name in names}
    bounds = {name: _cell_size_bounds(name, field.dataType) for name, field in fields.items()}
    expressions = [
        expression.alias(f"{index}_{level}_{side}")
        for index, name in enumerate(names)
        for level, pair in enumerate(bounds[name])
        for side, expression in zip(("min", "max"), pair)
    ]
    measured = df.agg(*expressions).first() if expressions else None
    for index, name in enumerate(names):
        shape = [UNKNOWN]
        for level in range(len(bounds[name])):
            low, high = measured[f"{index}_{level}_min"], measured[f"{index}_{level}_max"]
            shape.append(low if low is not None and low == high and low >= 0 else UNKNOWN)
        df = df.withMetadata(name, {**(fields[name].metadata or {}), SHAPE_KEY: shape})
    return df


def schema_lines(df: DataFrame) -> list[str]:
    """One ``name: dtype[shape]`` line per column."""
    return [
        f"{field.name}: {dtype_name(field.dataType)}{format_shape(column_shape(field))}"
        for field in df.schema.fields
    ]


def print_schema(df: DataFrame) -> None:
    """Print each column's element type and block shape, e.g. ``features: float32[?, 512]``.

    >>> import deepframes
    >>> spark = deepframes.session("local[2]")
    >>> print_schema(spark.createDataFrame([(1.0, "a")], "x double, name string"))
    x: float64[?]
    name: string[?]
    """
    print("\n".join(schema_lines(df)))
