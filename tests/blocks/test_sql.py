"""sparkdl parity: block and row functions registered as Spark SQL functions."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.sql import functions as F

import deepframes


@pytest.fixture
def numbers(spark):
    df = spark.createDataFrame([(float(x), x) for x in range(10)], "x double, n long").repartition(3)
    df.createOrReplaceTempView("numbers")
    return df


def test_register_block_udf_inferred_from_a_dataframe(spark, numbers):
    deepframes.register_block_udf(spark, "add_three", lambda b: {"z": b["x"] + 3}, numbers, columns=["x"])
    rows = spark.sql("SELECT x, add_three(x) AS z FROM numbers").collect()
    assert sorted(row.z for row in rows) == [x + 3.0 for x in range(10)]
    assert all(row.z == row.x + 3 for row in rows)
    # the same function from the DataFrame API
    assert numbers.select(F.call_function("add_three", "x").alias("z")).agg(F.sum("z")).first()[0] == 75.0


def test_register_block_udf_several_arguments_and_outputs_as_struct(spark, numbers):
    def stats(block):
        return {"total": block["x"] + block["n"], "shape": np.stack([block["x"], -block["x"]], axis=1)}

    deepframes.register_block_udf(spark, "stats", stats, numbers)
    row = spark.sql("SELECT stats(x, n) AS s FROM numbers WHERE n = 4").first()
    assert row.s.total == 8.0
    assert list(row.s.shape) == [4.0, -4.0]  # N-D outputs are flat in SQL


def test_register_block_udf_declared_types_and_nulls(spark):
    deepframes.register_block_udf(
        spark, "halve", lambda b: {"h": (b["x"] / 2).astype(np.float32)}, "x double", output_schema="h float"
    )
    rows = spark.sql("SELECT halve(x) AS h FROM VALUES (4.0D), (NULL), (1.0D) AS t(x)").collect()
    assert [row.h for row in rows] == [2.0, None, 0.5]


def test_register_block_udf_tf_function(spark, numbers):
    import tensorflow as tf

    deepframes.register_block_udf(spark, "tf_add", tf.function(lambda b: {"z": b["x"] * 10}), numbers, columns=["x"])
    assert spark.sql("SELECT sum(tf_add(x)) AS s FROM numbers").first().s == 450.0


def test_register_row_udf_cells_of_different_shapes(spark):
    df = spark.createDataFrame([([1.0],), ([1.0, 2.0],), ([1.0, 2.0, 3.0],)], "v array<double>")
    df.createOrReplaceTempView("ragged")
    deepframes.register_row_udf(spark, "cell_total", lambda row: {"total": row["v"].sum()}, df)
    totals = spark.sql("SELECT cell_total(v) AS t FROM ragged").collect()
    assert sorted(row.t for row in totals) == [1.0, 3.0, 6.0]


def test_register_udf_needs_an_output_schema_without_sample_rows(spark):
    with pytest.raises(ValueError, match=r"register_block_udf cannot infer the output type.*output_schema='z double'"):
        deepframes.register_block_udf(spark, "nothing", lambda b: {"z": b["x"]}, "x double")
    with pytest.raises(ValueError, match=r"Expected a SQL function name.*Received: name='two words'"):
        deepframes.register_row_udf(spark, "two words", lambda r: r, "x double", output_schema="x double")
    with pytest.raises(TypeError, match=r"`inputs` must be a DataFrame .* Received: list"):
        deepframes.register_block_udf(spark, "f", lambda b: b, [1, 2], output_schema="x double")
