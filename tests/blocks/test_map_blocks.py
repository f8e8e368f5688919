"""map_blocks and map_rows: NumPy, tf.function and torch functions; shapes, nulls, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pyspark.errors import PythonException
from pyspark.ml.linalg import Vectors

import deepframes
from deepframes.blocks.shapes import schema_lines


def _z(df):
    return [row.z for row in df.orderBy("x").collect()]


EXPECTED_Z = [x + 3.0 for x in range(10)]


def test_map_blocks_add_three_numpy(ten_floats):
    out = deepframes.map_blocks(lambda block: {"z": block["x"] + 3}, ten_floats)
    assert out.columns == ["x", "z"]
    assert _z(out) == EXPECTED_Z


def test_map_blocks_add_three_tf_function_traced_once_per_worker(ten_floats):
    import tensorflow as tf
    traces = []

    @tf.function
    def add_three(block):
        traces.append(1)  # Python runs only while tracing; the count is baked into the graph
        return {"z": block["x"] + 3.0, "trace": tf.fill(tf.shape(block["x"]), len(traces))}

    out = deepframes.map_blocks(add_three, ten_floats.repartition(4), block_size=2)
    rows = out.orderBy("x").collect()
    assert [row.z for row in rows] == EXPECTED_Z
    # 4 partitions, blocks of 2 and 1 rows, on 2 reused workers: still one trace each.
    assert {row.trace for row in rows} == {1}


def test_map_blocks_add_three_torch(ten_floats):
    import torch

    class AddThree(torch.nn.Module):
        def forward(self, block):
            return {"z": block["x"] + 3}

    assert _z(deepframes.map_blocks(AddThree(), ten_floats)) == EXPECTED_Z
    as_tensor = deepframes.map_blocks(lambda b: {"z": torch.tensor(b["x"]) + 3}, ten_floats)
    assert _z(as_tensor) == EXPECTED_Z


def test_map_blocks_blocks_have_exactly_block_size_rows(spark, ten_floats):
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "3")
    try:
        one_partition = ten_floats.coalesce(1)
        out = deepframes.map_blocks(lambda b: {"n": np.full(len(b["x"]), len(b["x"]))}, one_partition, block_size=4)
        assert sorted(row.n for row in out.collect()) == [2, 2, 4, 4, 4, 4, 4, 4, 4, 4]
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")


def test_map_blocks_vector_column_of_512(spark):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(20, 512)).astype(np.float32)
    df = spark.createDataFrame([(row.tolist(),) for row in data], "features array<float>")
    df = deepframes.append_shape(df, "features", [None, 512])
    assert schema_lines(df) == ["features: float32[?, 512]"]

    def normalise(block):
        features = block["features"]
        assert features.shape[1:] == (512,) and features.dtype == np.float32
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        return {"unit": features / norms, "norm": norms[:, 0]}

    out = deepframes.map_blocks(normalise, df)
    assert schema_lines(out) == ["features: float32[?, 512]", "unit: float32[?, 512]", "norm: float32[?]"]
    unit = np.array([row.unit for row in out.collect()])
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-5)


def test_map_blocks_ml_vectors_and_nd_outputs(spark):
    df = spark.createDataFrame([(Vectors.dense([1.0, 2.0]),), (Vectors.sparse(2, [1], [5.0]),)], ["v"])
    out = deepframes.map_blocks(lambda b: {"pairs": np.stack([b["v"], 2 * b["v"]], axis=1)}, df)
    assert schema_lines(out)[-1] == "pairs: float64[?, 2, 2]"
    back = deepframes.map_blocks(lambda b: {"first": b["pairs"][:, 1, :]}, out.select("pairs"))
    assert sorted(tuple(row.first) for row in back.collect()) == [(0.0, 10.0), (2.0, 4.0)]


def test_map_blocks_nulls_in_give_nulls_out(spark):
    df = spark.createDataFrame([(1.0,), (None,), (3.0,)], "x double")
    seen = deepframes.map_blocks(lambda b: {"z": b["x"] * 2, "finite": np.isfinite(b["x"])}, df)
    rows = sorted(seen.collect(), key=lambda row: (row.x is None, row.x))
    assert [(row.z, row.finite) for row in rows] == [(2.0, True), (6.0, True), (None, None)]


def test_map_blocks_empty_partitions(spark):
    df = spark.createDataFrame([(1.0,), (2.0,)], "x double").repartition(6)
    assert sorted(r.z for r in deepframes.map_blocks(lambda b: {"z": b["x"] + 1}, df).collect()) == [2.0, 3.0]


def test_map_blocks_trim_replaces_frame_and_may_change_rows(ten_floats):
    out = deepframes.map_blocks(lambda b: {"big": b["x"][b["x"] >= 7]}, ten_floats, trim=True)
    assert out.columns == ["big"]
    assert sorted(row.big for row in out.collect()) == [7.0, 8.0, 9.0]


def test_map_blocks_output_schema_overrides_inference(ten_floats):
    out = deepframes.map_blocks(lambda b: {"z": b["x"] + 3}, ten_floats, output_schema="z float")
    assert out.schema["z"].dataType.simpleString() == "float"
    assert _z(out) == EXPECTED_Z


def test_map_blocks_strings_in_and_out(spark):
    df = spark.createDataFrame([("ab",), ("cde",)], "word string")
    out = deepframes.map_blocks(lambda b: {"upper": np.char.upper(b["word"].astype(str)), "n": np.char.str_len(b["word"].astype(str))}, df)
    assert sorted((row.upper, row.n) for row in out.collect()) == [("AB", 2), ("CDE", 3)]


def test_map_blocks_pandas_runs_locally():
    frame = pd.DataFrame({"x": np.arange(10.0)})
    out = deepframes.map_blocks(lambda b: {"z": b["x"] + 3}, frame, block_size=4)
    assert out["z"].tolist() == EXPECTED_Z
    assert list(out.columns) == ["x", "z"]


def test_map_rows_handles_cells_of_different_shapes(spark):
    df = spark.createDataFrame([([1.0],), ([1.0, 2.0],), ([1.0, 2.0, 3.0],)], "v array<double>")
    out = deepframes.map_rows(lambda row: {"total": row["v"].sum(), "doubled": row["v"] * 2}, df)
    rows = sorted(out.collect(), key=lambda row: row.total)
    assert [row.total for row in rows] == [1.0, 3.0, 6.0]
    assert [list(row.doubled) for row in rows] == [[2.0], [2.0, 4.0], [2.0, 4.0, 6.0]]


# ---- bad input ---------------------------------------------------------------------------


def test_map_blocks_unequal_cells_point_to_map_rows(spark):
    df = spark.createDataFrame([([1.0],), ([1.0, 2.0],)], "v array<double>").coalesce(1)
    # caught on the driver, by the sample that infers the output columns
    with pytest.raises(ValueError, match=r"Column 'v' has cells of different shapes.*Use map_rows"):
        deepframes.map_blocks(lambda b: {"s": b["v"].sum(1)}, df)
    # and on the executors, when the first rows agree but later ones do not
    later = spark.createDataFrame([([1.0],)] * 20 + [([1.0, 2.0],)], "v array<double>").coalesce(1)
    out = deepframes.map_blocks(lambda b: {"s": b["v"].sum(1)}, later, block_size=32)
    with pytest.raises(PythonException, match=r"Column 'v' has cells of different shapes.*Use map_rows"):
        out.collect()


def test_map_blocks_row_count_change_needs_trim(ten_floats):
    with pytest.raises(deepframes.BlockFunctionError, match=r"returned 1 rows for 'z'.*trim=True"):
        deepframes.map_blocks(lambda b: {"z": b["x"][:1]}, ten_floats)


def test_map_blocks_missing_column_is_named(ten_floats):
    with pytest.raises(ValueError, match=r"\['y'\] are not in the DataFrame. Available columns: \['x'\]"):
        deepframes.map_blocks(lambda b: {"z": b["y"]}, ten_floats, columns=["y"])


def test_map_blocks_dtype_change_between_blocks(ten_floats):
    def unstable(block):
        x = block["x"]
        return {"z": x if x.min() < 1 else x.astype(np.int64)}

    out = deepframes.map_blocks(unstable, ten_floats.coalesce(1).orderBy("x"), block_size=3)
    with pytest.raises(PythonException, match=r"Output 'z' changed dtype between blocks: expected float64, received int64"):
        out.collect()


def test_map_blocks_function_error_names_function(ten_floats):
    def broken(block):
        raise KeyError("nope")

    with pytest.raises(deepframes.BlockFunctionError, match=r"map_blocks: function .*broken' raised KeyError"):
        deepframes.map_blocks(broken, ten_floats)


def test_map_blocks_output_name_clash(ten_floats):
    with pytest.raises(ValueError, match=r"output column\(s\) \['x'\] already exist.*trim=True"):
        deepframes.map_blocks(lambda b: {"x": b["x"]}, ten_floats)


def test_map_blocks_rejects_bad_block_size(ten_floats):
    with pytest.raises(ValueError, match="Received: block_size=0"):
        deepframes.map_blocks(lambda b: b, ten_floats, block_size=0)
