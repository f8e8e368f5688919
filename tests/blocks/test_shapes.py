"""Shape metadata: append_shape (no pass), analyze (one pass), print_schema."""

from __future__ import annotations

import pytest

import deepframes


def test_print_schema_shows_dtypes_and_shapes(spark, capsys):
    df = spark.createDataFrame([(1.0, [1.0, 2.0], "a", 3)], "x double, v array<float>, s string, n int")
    deepframes.print_schema(deepframes.append_shape(df, "v", [None, 2]))
    assert capsys.readouterr().out.splitlines() == ["x: float64[?]", "v: float32[?, 2]", "s: string[?]", "n: int32[?]"]


def test_analyze_measures_every_level_in_one_pass(spark, capsys):
    rows = [([[1, 2, 3], [4, 5, 6]], [1.0]), ([[7, 8, 9], [1, 2, 3]], [1.0, 2.0])]
    df = spark.createDataFrame(rows, "m array<array<int>>, ragged array<double>")
    deepframes.print_schema(deepframes.analyze(df))
    assert capsys.readouterr().out.splitlines() == ["m: int32[?, 2, 3]", "ragged: float64[?, ?]"]


def test_analyze_finds_inner_arrays_that_differ(spark, capsys):
    df = spark.createDataFrame([([[1, 2], [3, 4, 5]],)], "m array<array<int>>")
    deepframes.print_schema(deepframes.analyze(df))
    assert capsys.readouterr().out.strip() == "m: int32[?, 2, ?]"


def test_recorded_shape_reshapes_flat_cells(spark):
    df = spark.createDataFrame([(list(range(6)),)], "m array<long>")
    shaped = deepframes.append_shape(df, "m", [None, 2, 3])
    out = deepframes.map_blocks(lambda b: {"rows": b["m"].sum(2)}, shaped)
    assert list(out.first().rows) == [3, 12]


def test_append_shape_rejects_bad_shapes(spark):
    df = spark.createDataFrame([([1.0],)], "v array<double>")
    with pytest.raises(ValueError, match="must start with the row dimension"):
        deepframes.append_shape(df, "v", [3])
    with pytest.raises(ValueError, match="not in the DataFrame"):
        deepframes.append_shape(df, "w", [None])


def test_wrong_recorded_shape_is_reported(spark):
    df = deepframes.append_shape(spark.createDataFrame([([1.0, 2.0, 3.0],)], "v array<double>"), "v", [None, 2])
    with pytest.raises(ValueError, match=r"Column 'v' is recorded with shape \[\?, 2\] but its cells have shape \[3\]"):
        deepframes.map_blocks(lambda b: {"s": b["v"].sum(1)}, df)


def test_append_shape_and_analyze_take_a_column(spark, capsys):
    from pyspark.sql import functions as F

    df = spark.createDataFrame([([1.0, 2.0], 1.0)], "v array<float>, x double")
    deepframes.print_schema(deepframes.append_shape(df, F.col("v"), [None, 2]))
    deepframes.print_schema(deepframes.append_shape(df, df["v"], [None, 2]))
    deepframes.print_schema(deepframes.analyze(df, [F.col("v")]).select("v"))
    assert capsys.readouterr().out.splitlines() == ["v: float32[?, 2]", "x: float64[?]"] * 2 + ["v: float32[?, 2]"]


def test_append_shape_refuses_an_expression_or_other_types(spark):
    from pyspark.sql import functions as F

    df = spark.createDataFrame([([1.0, 2.0],)], "v array<float>")
    with pytest.raises(ValueError, match=r"is an expression, not a column.*withColumn"):
        deepframes.append_shape(df, F.col("v").alias("w"), [None, 2])
    with pytest.raises(TypeError, match=r"column name \(str\) or a Column.*Received: int 3"):
        deepframes.append_shape(df, 3, [None, 2])
