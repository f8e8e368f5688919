"""One builder for the Arrow UDFs that append columns to a DataFrame.

Block functions and model stages both hand it ``compute``: a picklable, top-level function (a
``functools.partial`` over a frozen plan) from an iterator of Arrow record batches of the input
columns to an iterator of output column lists, one list per batch and one row per input row. The
builder owns everything else: the scalar-iterator Arrow UDF, a struct holder when there are
several outputs, the shapes recorded on the new columns, and the one rule for names (an output
column never silently replaces an existing one).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, StructField, StructType

from .shapes import with_shapes

Compute = Callable[[Iterator[pa.RecordBatch]], Iterator[list[pa.Array]]]

_HOLDER = "__deepframes_outputs"


@dataclass(frozen=True)
class OutputColumn:
    """A column an operation appends: its name, Spark type, and block shape to record (if any)."""

    name: str
    spark_type: DataType
    shape: tuple[int, ...] | None = None


def record_batches(batches: Iterator, names: Sequence[str]) -> Iterator[pa.RecordBatch]:
    """A scalar-iterator Arrow UDF's input (an array, or a tuple of arrays, per batch) as
    record batches named after the input columns."""
    for arrays in batches:
        arrays = [arrays] if isinstance(arrays, (pa.Array, pa.ChunkedArray)) else list(arrays)
        yield pa.RecordBatch.from_arrays(arrays, names=list(names))


def _udf_body(batches: Iterator, compute: Compute, inputs: tuple[str, ...],
              outputs: tuple[str, ...]) -> Iterator[pa.Array]:
    for columns in compute(record_batches(batches, inputs)):
        yield columns[0] if len(columns) == 1 else pa.StructArray.from_arrays(columns, names=list(outputs))


def _partition_body(batches: Iterator[pa.RecordBatch], compute: Compute,
                    outputs: tuple[str, ...]) -> Iterator[pa.RecordBatch]:
    for columns in compute(batches):
        yield pa.RecordBatch.from_arrays(columns, names=list(outputs))


def _struct(outputs: Sequence[OutputColumn]) -> StructType:
    return StructType([StructField(column.name, column.spark_type, True) for column in outputs])


def column_udf(compute: Compute, inputs: Sequence[str], outputs: Sequence[OutputColumn]):
    """The scalar-iterator Arrow UDF running ``compute`` (a struct of outputs if several); also
    what ``spark.udf.register`` takes for SQL."""
    from pyspark.sql.pandas.functions import ArrowUDFType, arrow_udf

    schema = outputs[0].spark_type if len(outputs) == 1 else _struct(outputs)
    body = functools.partial(_udf_body, compute=compute, inputs=tuple(inputs),
                             outputs=tuple(column.name for column in outputs))
    with warnings.catch_warnings():  # Spark prefers type hints; a partial has none to give
        warnings.simplefilter("ignore", UserWarning)
        return arrow_udf(body, schema, ArrowUDFType.SCALAR_ITER)


def check_new_columns(df: DataFrame, names: Sequence[str], operation: str, fix: str = "") -> None:
    """Refuse output columns that already exist: nothing is silently replaced (pyspark.ml's rule).
    ``fix`` says how to choose other names in the caller's terms."""
    clashes = [name for name in names if name in df.columns]
    if clashes:
        drop = ", ".join(map(repr, clashes))
        raise ValueError(
            f"{operation}: output column(s) {clashes} already exist in the DataFrame. "
            f"{fix or 'Choose new output names'}, or drop the old column(s) first (df.drop({drop}))."
        )


def rows_for_udt_columns(df: DataFrame) -> DataFrame:
    """``df`` unchanged in content, but read as rows below an Arrow UDF when it has a column of a
    user-defined type (an ML vector).

    Spark 4.3's ``ArrowEvalPythonExec`` takes a columnar path whenever its child produces columnar
    batches (a vectorized Parquet or ORC scan), and that path converts every column it passes
    through with ``RowToColumnConverter``, which has no converter for user-defined types: a vector
    column read straight from Parquet fails with ``UNSUPPORTED_DATATYPE`` even when the UDF does not
    read it (a cached copy works: the cache is not columnar for such types). Each such column is
    therefore projected through ``CASE WHEN spark_partition_id() >= 0``, always true and cheap; as a
    non-deterministic projection, the optimizer keeps it as a row-based step below the UDF.
    """
    from pyspark.sql.types import UserDefinedType

    udt_columns = {field.name for field in df.schema.fields if isinstance(field.dataType, UserDefinedType)}
    if not udt_columns:
        return df
    return df.select(*[
        F.when(F.spark_partition_id() >= 0, F.col(field.name)).alias(field.name, metadata=field.metadata)
        if field.name in udt_columns else F.col(field.name)
        for field in df.schema.fields
    ])


def append_columns(df: DataFrame, compute: Compute, inputs: Sequence[str], outputs: Sequence[OutputColumn],
                   *, operation: str, fix: str = "") -> DataFrame:
    """``df`` with ``outputs`` appended, computed by ``compute`` from the ``inputs`` columns.

    Only the input columns travel to Python; every other column passes through untouched.
    """
    check_new_columns(df, [column.name for column in outputs], operation, fix)
    df = rows_for_udt_columns(df)
    call = column_udf(compute, inputs, outputs)(*[F.col(name) for name in inputs])
    if len(outputs) == 1:
        result = df.withColumn(outputs[0].name, call)
    else:
        result = df.withColumn(_HOLDER, call).select(
            *[F.col(name) for name in df.columns],
            *[F.col(_HOLDER)[column.name].alias(column.name) for column in outputs],
        )
    return with_shapes(result, {column.name: column.shape for column in outputs if column.shape})


def map_partitions(df: DataFrame, compute: Compute, inputs: Sequence[str],
                   outputs: Sequence[OutputColumn]) -> DataFrame:
    """A DataFrame of ``outputs`` only, computed by ``compute`` from the ``inputs`` columns
    (``mapInArrow``: the row count may change)."""
    body = functools.partial(_partition_body, compute=compute, outputs=tuple(column.name for column in outputs))
    result = df.select(*inputs).mapInArrow(body, _struct(outputs))
    return with_shapes(result, {column.name: column.shape for column in outputs if column.shape})
