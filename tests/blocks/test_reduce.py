"""reduce_blocks, reduce_rows and aggregate: the exact distributed mean, min/max/sum, groups."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import deepframes
from tests.blocks.conftest import SLICE_SIZES, sliced_frame


def weighted_mean(block):
    """Associative mean: on raw rows w is 1; on partial results w is each slice's row count."""
    return {"x": np.average(block["x"], weights=block["w"]), "w": block["w"].sum()}


def test_reduce_blocks_distributed_mean_is_exact(spark, column_values):
    df = sliced_frame(spark, column_values)
    assert df.rdd.getNumPartitions() == len(SLICE_SIZES)
    result = deepframes.reduce_blocks(weighted_mean, df, block_size=50)
    assert result["w"] == len(column_values)
    assert abs(result["x"] - np.mean(column_values)) <= 1e-12 * abs(np.mean(column_values))


def test_reduce_blocks_min_max_sum(spark, column_values):
    df = sliced_frame(spark, column_values).select("x")
    for reducer, expected in ((np.min, column_values.min()), (np.max, column_values.max())):
        assert deepframes.reduce_blocks(lambda b, r=reducer: {"x": r(b["x"], axis=0)}, df)["x"] == expected
    total = deepframes.reduce_blocks(lambda b: {"x": b["x"].sum(0)}, df)["x"]
    assert total == pytest.approx(column_values.sum(), rel=1e-12)


def test_reduce_blocks_vector_column_sums_per_dimension(spark):
    data = np.arange(30 * 512, dtype=np.float32).reshape(30, 512) % 7
    df = spark.createDataFrame([(row.tolist(),) for row in data], "v array<float>").repartition(4)
    result = deepframes.reduce_blocks(lambda b: {"v": b["v"].sum(0)}, deepframes.append_shape(df, "v", [None, 512]))
    np.testing.assert_allclose(result["v"], data.sum(0))
    assert result["v"].shape == (512,)


def test_reduce_blocks_skips_nulls_and_empty_partitions(spark):
    df = spark.createDataFrame([(1.0,), (None,), (5.0,)], "x double").repartition(5)
    assert deepframes.reduce_blocks(lambda b: {"x": b["x"].sum(0)}, df)["x"] == 6.0


def test_reduce_blocks_tf_and_torch_reducers(spark, column_values):
    import tensorflow as tf
    import torch
    df = sliced_frame(spark, column_values).select("x")
    by_tf = deepframes.reduce_blocks(tf.function(lambda b: {"x": tf.reduce_max(b["x"], axis=0)}), df)
    by_torch = deepframes.reduce_blocks(lambda b: {"x": torch.as_tensor(b["x"]).min(0).values}, df)
    assert by_tf["x"] == column_values.max() and by_torch["x"] == column_values.min()


def test_reduce_rows_pairwise(spark, column_values):
    df = sliced_frame(spark, column_values).select("x")
    result = deepframes.reduce_rows(lambda a, b: {"x": max(a["x"], b["x"])}, df)
    assert result["x"] == column_values.max()


def test_aggregate_per_group(spark):
    rows = [("cat", 1.0, 1.0), ("cat", 3.0, 1.0), ("dog", 10.0, 1.0), ("dog", None, 1.0), ("eel", 7.0, 1.0)]
    df = spark.createDataFrame(rows, "animal string, x double, w double").repartition(3)
    out = deepframes.aggregate(weighted_mean, df, by="animal")
    assert out.columns == ["animal", "x", "w"]
    assert sorted((row.animal, row.x, row.w) for row in out.collect()) == [
        ("cat", 2.0, 2.0), ("dog", 10.0, 1.0), ("eel", 7.0, 1.0)]


def test_aggregate_vectors_per_group(spark):
    df = spark.createDataFrame([("a", [1.0, 2.0]), ("a", [3.0, 4.0]), ("b", [5.0, 6.0])], "k string, v array<double>")
    out = deepframes.aggregate(lambda b: {"v": b["v"].sum(0)}, df, by="k")
    assert sorted((row.k, list(row.v)) for row in out.collect()) == [("a", [4.0, 6.0]), ("b", [5.0, 6.0])]


@pytest.mark.parametrize("key_type", ["int", "smallint", "bigint", "tinyint"])
def test_aggregate_keeps_integer_group_keys(spark, key_type):
    df = spark.createDataFrame([(1, 1.0), (1, 2.0), (2, 5.0)], f"k {key_type}, x double")
    out = deepframes.aggregate(lambda b: {"x": b["x"].sum(0)}, df, by="k")
    assert out.schema["k"].dataType == df.schema["k"].dataType
    assert sorted(tuple(row) for row in out.collect()) == [(1, 3.0), (2, 5.0)]


def test_aggregate_refuses_grouped_data_with_the_new_form(spark):
    df = spark.createDataFrame([("a", 1.0)], "k string, x double")
    with pytest.raises(TypeError, match=r"aggregate\(fn, df, by='key'\)"):
        deepframes.aggregate(lambda b: b, df.groupBy("k"))


def test_reduce_and_aggregate_on_pandas():
    frame = pd.DataFrame({"k": ["a", "a", "b"], "x": [1.0, 2.0, 4.0]})
    assert deepframes.reduce_blocks(lambda b: {"x": b["x"].sum(0)}, frame, columns=["x"])["x"] == 7.0
    grouped = deepframes.aggregate(lambda b: {"x": b["x"].max(0)}, frame, by="k")
    assert grouped.to_dict("records") == [{"k": "a", "x": 2.0}, {"k": "b", "x": 4.0}]


# ---- bad input ---------------------------------------------------------------------------


def test_reduce_blocks_reducer_that_raises_is_named(spark, column_values):
    def exploding_sum(block):
        raise ZeroDivisionError("boom")

    df = sliced_frame(spark, column_values).select("x")
    with pytest.raises(deepframes.BlockFunctionError, match=r"reduce_blocks: function .*exploding_sum' raised ZeroDivisionError: boom"):
        deepframes.reduce_blocks(exploding_sum, df)


def test_reduce_blocks_must_return_its_columns(spark, column_values):
    df = sliced_frame(spark, column_values)
    with pytest.raises(deepframes.BlockFunctionError, match=r"must return one value for each column.*\['w', 'x'\].*returned \['x'\]"):
        deepframes.reduce_blocks(lambda b: {"x": b["x"].sum(0)}, df)


def test_reduce_blocks_of_nothing(spark):
    df = spark.createDataFrame([(None,)], "x double")
    with pytest.raises(ValueError, match="nothing to reduce"):
        deepframes.reduce_blocks(lambda b: {"x": b["x"].sum(0)}, df)


def test_row_functions_on_pandas():
    frame = pd.DataFrame({"v": [np.array([1.0]), np.array([1.0, 2.0])], "x": [3.0, 4.0]})
    lengths = deepframes.map_rows(lambda row: {"n": len(row["v"])}, frame, columns=["v"])
    assert lengths["n"].tolist() == [1, 2]
    assert deepframes.reduce_rows(lambda a, b: {"x": a["x"] * b["x"]}, frame, columns=["x"])["x"] == 12.0
