"""TensorFrames parity: tf.functions in block and row operations, on local[2] and on separate
executors (local-cluster[2,1,1024]), where nothing traced on the driver may travel."""

from __future__ import annotations

import numpy as np
import pytest

import deepframes

SESSIONS = ["spark", pytest.param("cluster_spark", marks=pytest.mark.cluster)]


@pytest.fixture(params=SESSIONS)
def session(request):
    return request.getfixturevalue(request.param)


def _ten(session):
    return session.createDataFrame([(float(x),) for x in range(10)], "x double").repartition(3)


def test_map_blocks_plain_function_calling_a_tf_function(session):
    import tensorflow as tf

    add_three = tf.function(lambda block: {"z": block["x"] + 3})
    out = deepframes.map_blocks(lambda block: add_three(block), _ten(session))
    # Inferring the output columns ran add_three on the driver; the shipped function is untraced.
    row = out.first()  # one row: two first() calls may return different rows on executors
    assert row.z == row.x + 3
    assert sorted(row.z for row in out.collect()) == [x + 3.0 for x in range(10)]


def test_map_blocks_tf_function_traced_by_the_caller_first(session):
    import tensorflow as tf

    add_three = tf.function(lambda block: {"z": block["x"] + 3})
    assert add_three({"x": tf.constant([1.0])})["z"].numpy().tolist() == [4.0]
    out = deepframes.map_blocks(add_three, _ten(session))
    assert sorted(row.z for row in out.collect()) == [x + 3.0 for x in range(10)]
    # and a plain function around it, both traced before
    around = deepframes.map_blocks(lambda block: add_three(block), _ten(session))
    assert sorted(row.z for row in around.collect()) == [x + 3.0 for x in range(10)]


def test_map_rows_tf_function_gets_cells_not_blocks(session):
    import tensorflow as tf

    out = deepframes.map_rows(tf.function(lambda row: {"z": row["x"] + 3}), _ten(session))
    assert sorted(row.z for row in out.collect()) == [x + 3.0 for x in range(10)]
    ragged = session.createDataFrame([([1.0],), ([1.0, 2.0],), ([1.0, 2.0, 3.0],)], "v array<double>")
    sums = deepframes.map_rows(
        tf.function(lambda row: {"total": tf.reduce_sum(row["v"]), "twice": row["v"] * 2}), ragged
    )
    rows = sorted(sums.collect(), key=lambda row: row.total)
    assert [row.total for row in rows] == [1.0, 3.0, 6.0]
    assert [list(row.twice) for row in rows] == [[2.0], [2.0, 4.0], [2.0, 4.0, 6.0]]


def test_reduce_rows_tf_function_of_two_rows(session):
    import tensorflow as tf

    result = deepframes.reduce_rows(tf.function(lambda a, b: {"x": a["x"] + b["x"]}), _ten(session))
    assert float(result["x"]) == 45.0


def test_reduce_rows_torch_module_of_two_rows(spark):
    import torch

    class Larger(torch.nn.Module):
        def forward(self, a, b):
            return {"x": torch.maximum(a["x"], b["x"])}

    assert float(deepframes.reduce_rows(Larger(), _ten(spark))["x"]) == 9.0


def test_block_function_capturing_a_broadcast_variable(spark):
    offsets = spark.sparkContext.broadcast(np.array([100.0]))
    try:
        out = deepframes.map_blocks(lambda block: {"z": block["x"] + offsets.value[0]}, _ten(spark))
        assert sorted(row.z for row in out.collect()) == [x + 100.0 for x in range(10)]
    finally:
        offsets.unpersist()


def test_driver_never_calls_the_shipped_function(spark):
    calls = []

    def counted(block):
        calls.append(len(block["x"]))  # would make the function's state differ once shipped
        return {"z": block["x"] * 2}

    out = deepframes.map_blocks(counted, _ten(spark))
    assert calls == []  # the sample ran on the driver's private copy
    assert sorted(row.z for row in out.collect()) == [2.0 * x for x in range(10)]


def test_unpicklable_function_is_named_with_the_fix(spark):
    import threading

    lock = threading.Lock()

    def locked(block):
        with lock:
            return {"z": block["x"]}

    with pytest.raises(TypeError, match=r"map_blocks could not pickle function .*locked.*lock.*inside the function"):
        deepframes.map_blocks(locked, _ten(spark))


def test_feed_dict_form_from_the_readme(spark):
    """TensorFrames' feed_dict={"x_input": "x"}: the function's input name bound to column x."""
    import tensorflow as tf

    df = _ten(spark)
    add_three = tf.function(lambda inputs: {"z": inputs["x_input"] + 3})
    out = deepframes.map_blocks(lambda block: add_three({"x_input": block["x"]}), df, columns=["x"])
    assert out.columns == ["x", "z"]
    assert sorted(row.z for row in out.collect()) == [x + 3.0 for x in range(10)]
