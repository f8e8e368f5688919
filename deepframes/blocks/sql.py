"""Block and row functions as Spark SQL functions, as sparkdl exposed TensorFlow graphs to SQL:
``register_block_udf`` and ``register_row_udf``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from .mapping import Schema, column_udf, plan_map

_SQL_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name or not set(name) <= _SQL_NAME_CHARS or name[0].isdigit():
        raise ValueError(
            "Invalid value received for argument `name`. Expected a SQL function name of letters, "
            f"digits and underscores, not starting with a digit. Received: name={name!r}"
        )


def _example_frame(spark: SparkSession, inputs: DataFrame | StructType | str, output_schema: Schema, operation: str) -> DataFrame:
    """The DataFrame whose columns are the SQL function's arguments (types and shapes)."""
    if isinstance(inputs, DataFrame):
        return inputs
    if isinstance(inputs, (str, StructType)):
        if output_schema is None:
            raise ValueError(
                f"{operation} cannot infer the output type from a schema alone: inferring calls the "
                f"function on sample rows, and {inputs!r} has none. Pass output_schema (e.g. "
                "output_schema='z double'), or pass a DataFrame as `inputs` to sample its first rows."
            )
        return spark.createDataFrame([], inputs)
    raise TypeError(
        f"{operation}: `inputs` must be a DataFrame (whose columns are the function's arguments) or "
        f"a schema (a DDL string such as 'x double, v array<float>', or a StructType). Received: "
        f"{type(inputs).__name__}"
    )


def _register(
    spark: SparkSession,
    name: str,
    fn: Callable,
    inputs: DataFrame | StructType | str,
    columns: Sequence[str] | None,
    output_schema: Schema,
    block_size: int | None,
    by_row: bool,
):
    operation = "register_row_udf" if by_row else "register_block_udf"
    _check_name(name)
    df = _example_frame(spark, inputs, output_schema, operation)
    plan = plan_map(fn, df, columns, block_size, False, output_schema, by_row)
    return spark.udf.register(name, column_udf(plan))


def register_block_udf(
    spark: SparkSession,
    name: str,
    fn: Callable[[dict[str, np.ndarray]], dict],
    inputs: DataFrame | StructType | str,
    *,
    columns: Sequence[str] | None = None,
    output_schema: Schema = None,
    block_size: int | None = None,
):
    """Register a block function (as :func:`~deepframes.map_blocks` takes) as the SQL function
    ``name``, callable from ``spark.sql`` and ``F.call_function``.

    The SQL function's arguments are the input columns, in order; ``fn`` receives them as
    ``{column: array}`` blocks under those names, exactly as in ``map_blocks``. With one output
    column it returns that column's value; with several, a struct of them (``f(x).z``). N-D
    outputs are flat arrays in SQL. Arguments must have the declared types (cast in SQL, e.g.
    ``CAST(n AS DOUBLE)``); rows with a null argument give null.

    Parameters
    ----------
    spark : SparkSession
    name : str
        The SQL function name.
    fn : callable
        ``fn(block: dict) -> dict`` returning one row per input row: NumPy, a ``tf.function`` or
        a PyTorch module, as for ``map_blocks``.
    inputs : DataFrame, StructType or DDL str
        The arguments: a DataFrame's columns (their types and recorded shapes; the output type is
        inferred by calling a copy of ``fn`` on its first rows), or a schema such as
        ``"x double, v array<float>"`` (then ``output_schema`` is needed).
    columns : list of str, optional
        The columns of ``inputs`` that are arguments, in order (default: all).
    output_schema : StructType or DDL str, optional
        The output columns, e.g. ``"z double"``; by default inferred from ``inputs``.
    block_size : int, optional
        Rows per block (default: Spark's Arrow batch size).

    Returns
    -------
    UserDefinedFunction
        The registered function, usable in the DataFrame API as well.

    Raises
    ------
    ValueError
        When ``name`` is not a SQL name, a column is missing, or ``inputs`` is a schema and no
        ``output_schema`` is given.
    TypeError
        When ``inputs`` is neither a DataFrame nor a schema, or ``fn`` cannot be pickled.

    Examples
    --------
    >>> import deepframes
    >>> spark = deepframes.session("local[2]")
    >>> df = spark.createDataFrame([(float(x),) for x in range(3)], "x double")
    >>> _ = deepframes.register_block_udf(spark, "add_three", lambda b: {"z": b["x"] + 3}, df)
    >>> df.createOrReplaceTempView("numbers")
    >>> [row.z for row in spark.sql("SELECT add_three(x) AS z FROM numbers ORDER BY x").collect()]
    [3.0, 4.0, 5.0]
    >>> _ = deepframes.register_block_udf(spark, "stats", lambda b: {"twice": 2 * b["x"], "square": b["x"] ** 2},
    ...     "x double", output_schema="twice double, square double")
    >>> spark.sql("SELECT stats(x).square AS s FROM numbers WHERE x = 2").first().s
    4.0
    """
    return _register(spark, name, fn, inputs, columns, output_schema, block_size, by_row=False)


def register_row_udf(
    spark: SparkSession,
    name: str,
    fn: Callable[[dict], dict],
    inputs: DataFrame | StructType | str,
    *,
    columns: Sequence[str] | None = None,
    output_schema: Schema = None,
):
    """Like :func:`register_block_udf`, for a row function (as :func:`~deepframes.map_rows`
    takes): ``fn`` gets ``{column: cell}`` for one row, so cells may differ in shape.

    Examples
    --------
    >>> import deepframes
    >>> spark = deepframes.session("local[2]")
    >>> df = spark.createDataFrame([([1.0, 2.0],), ([1.0, 2.0, 3.0],)], "v array<double>")
    >>> _ = deepframes.register_row_udf(spark, "total", lambda row: {"total": row["v"].sum()}, df)
    >>> df.createOrReplaceTempView("ragged")
    >>> sorted(row.t for row in spark.sql("SELECT total(v) AS t FROM ragged").collect())
    [3.0, 6.0]
    """
    return _register(spark, name, fn, inputs, columns, output_schema, None, by_row=True)


__all__ = ["register_block_udf", "register_row_udf"]
