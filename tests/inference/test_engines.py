"""Every engine passes the same contract: the same toy network gives the same numbers."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
from pyspark.errors import PythonException

import deepframes
from deepframes.engines import MissingEngineError, load_engine
from tests.conftest import SHARED
from tests.inference.conftest import TOY_FORMATS, reference


@pytest.mark.parametrize("name", sorted(TOY_FORMATS))
def test_engine_runs_toy_model_like_numpy(name, toy_models, toy_inputs):
    _, input_name, output_name = TOY_FORMATS[name]
    engine = load_engine(toy_models[name])
    assert [info.name for info in engine.inputs] == [input_name]
    outputs = engine.run({input_name: toy_inputs})
    np.testing.assert_allclose(outputs[output_name], reference(toy_inputs), atol=1e-5)
    assert outputs[output_name].dtype == np.float32


def test_engine_from_factories(toy_inputs):
    from tests.inference.conftest import _torch_module

    torch_engine = load_engine(_torch_module, framework="torch")
    np.testing.assert_allclose(torch_engine.run({"x": toy_inputs})["output"], reference(toy_inputs), atol=1e-5)


def _toy_frame(spark, toy_inputs):
    rows = [(index, row.tolist()) for index, row in enumerate(toy_inputs)]
    df = spark.createDataFrame(rows, "id long, x array<float>").repartition(3)
    return deepframes.append_shape(df, "x", [None, 4])


def transform_with_each_engine(spark, toy_models, toy_inputs) -> dict[str, np.ndarray]:
    df = _toy_frame(spark, toy_inputs)
    results = {}
    for name, path in toy_models.items():
        _, input_name, output_name = TOY_FORMATS[name]
        stage = deepframes.ModelTransformer(model=path, inputCols=["x"], inputNames=[input_name],
                                            outputNames=[output_name], outputCols=["y"], batchSize=8)
        rows = stage.transform(df).select("id", "y").collect()
        results[name] = np.array([row.y for row in sorted(rows, key=lambda row: row.id)])
    return results


def test_model_transformer_same_numbers_on_every_engine(spark, toy_models, toy_inputs):
    for name, values in transform_with_each_engine(spark, toy_models, toy_inputs).items():
        np.testing.assert_allclose(values, reference(toy_inputs), atol=1e-5, err_msg=name)


def test_missing_model_file_is_one_clear_error(spark, toy_inputs, tmp_path):
    stage = deepframes.ModelTransformer(model=str(tmp_path / "nope.onnx"), inputCols=["x"])
    with pytest.raises(FileNotFoundError, match=r"Model file not found: .*nope.onnx"):
        stage.transform(_toy_frame(spark, toy_inputs))


def test_wrong_recorded_shape_is_refused_before_any_job(spark, toy_models):
    df = deepframes.append_shape(spark.createDataFrame([([1.0] * 5,)], "x array<float>"), "x", [None, 5])
    stage = deepframes.ModelTransformer(model=toy_models["onnx"], inputCols=["x"])
    with pytest.raises(ValueError, match=r"Column 'x' gives model input 'x' batches of shape \[\?, 5\]; the model expects \[\?, 4\]"):
        stage.transform(df)


def test_wrong_cell_size_is_named_when_the_batch_runs(spark, toy_models):
    df = spark.createDataFrame([([1.0, 2.0, 3.0, 4.0, 5.0],)], "x array<float>")
    expected = r"Column 'x' gives model input 'x' batches of shape \[\?, 5\]; the model expects \[\?, 4\]"
    stage = deepframes.ModelTransformer(model=toy_models["onnx"], inputCols=["x"], errors="raise")
    out = stage.transform(df)  # no job yet
    with pytest.raises(PythonException, match=expected):
        out.collect()
    (row,) = stage.setErrors("column").transform(df).collect()  # the default: the row says why
    assert row.y is None and re.search(expected, row.error)


def test_a_row_the_model_raises_on_gets_its_reason_and_the_job_goes_on(spark, toy_models):
    """Every 50th row breaks the model (a NaN it refuses): its batch runs again row by row, so
    only those rows lose their output; 98% of the rows are answered."""
    import numpy as np

    from deepframes.inference.failures import counting_failures

    rows = [([float("nan")] * 4 if index % 50 == 7 else [float(index % 7), 1.0, 2.0, 3.0],) for index in range(500)]
    df = deepframes.append_shape(spark.createDataFrame(rows, "x array<float>").repartition(3), "x", [None, 4])
    stage = deepframes.ModelTransformer(model=str(_nan_refusing_model(toy_models)), inputCols=["x"], batchSize=32)
    with counting_failures(spark) as failures:
        out = stage.transform(df).collect()
    answered = [row for row in out if row.output is not None]
    failed = [row for row in out if row.error is not None]
    assert len(answered) == 490 and len(failed) == 10 and failures.value == 10
    assert all(row.output is None and row.error == "model failed on this row: builtins.ValueError: NaN in the input"
               for row in failed)
    assert all(np.isnan(row.x[0]) for row in failed)
    with pytest.raises(PythonException, match="NaN"):
        stage.setErrors("raise").transform(df).collect()


def test_unknown_extension_says_how_to_fix(tmp_path):
    model = tmp_path / "weights.bin"
    model.write_bytes(b"x")
    with pytest.raises(ValueError, match="Cannot tell the framework.*framework="):
        load_engine(str(model))


def test_missing_engine_names_the_extra(monkeypatch, toy_models):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(MissingEngineError, match=r"needs onnxruntime: pip install 'deepframes\[onnx\]'"):
        load_engine(toy_models["onnx"])


def test_keras_engine_reads_an_exported_savedmodel(toy_models, toy_inputs, tmp_path):
    import keras

    folder = str(tmp_path / "exported")
    keras.saving.load_model(toy_models["keras"]).export(folder)
    engine = load_engine(folder)
    assert engine.framework == "keras" and len(engine.inputs) == 1
    (values,) = engine.run({engine.inputs[0].name: toy_inputs}).values()
    np.testing.assert_allclose(values, reference(toy_inputs), atol=1e-5)


def test_placement_follows_the_task(spark):
    from deepframes.engines import Placement

    def placement(_):
        from deepframes.engines import Placement as TaskPlacement

        found = TaskPlacement.for_current_task()
        return found.threads, found.gpu, found.in_task

    on_executor = spark.sparkContext.parallelize([0], 1).map(placement).collect()
    assert on_executor == [(int(spark.conf.get("spark.task.cpus", "1")), None, True)]
    assert Placement.for_current_task() == Placement(threads=1, gpu=None, in_task=False)  # driver


def test_placement_takes_the_task_cpus_and_gpu(monkeypatch):
    import pyspark
    from pyspark.resource import ResourceInformation

    from deepframes.engines import Placement

    class Task:  # what a task given 3 CPUs and GPU 1 sees (local mode cannot give GPUs)
        def cpus(self):
            return 3

        def resources(self):
            return {"gpu": ResourceInformation("gpu", ["1"])}

    monkeypatch.setattr(pyspark.TaskContext, "get", classmethod(lambda cls: Task()))
    assert Placement.for_current_task() == Placement(threads=3, gpu="1", in_task=True)


def test_onnx_engine_computes_some_outputs_with_the_graph_cut_down():
    engine = load_engine(str(SHARED / "models" / "squeezenet1.1.onnx"))
    batch = {"data_0": np.random.default_rng(0).normal(size=(3, 3, 224, 224)).astype(np.float32)}
    whole = engine.run(batch)
    features = engine.run(batch, outputs=["features"])
    assert list(features) == ["features"]
    np.testing.assert_allclose(features["features"], whole["features"], rtol=1e-5, atol=1e-6)
    # The cut-down session holds only what the features need: no 1000-class output.
    cut = engine._sessions[("features",)]
    assert [node.name for node in cut.get_outputs()] == ["features"]
    assert engine.run(batch, outputs=["no such output"]).keys() == whole.keys()  # the caller names the error


def _nan_refusing_model(toy_models) -> str:
    """A TorchScript model that raises on a row holding a NaN, as a real model does on bad input."""
    import os

    import torch

    class RefusesNaN(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if bool(torch.isnan(x).any()):
                raise ValueError("NaN in the input")
            return x * 2.0

    path = os.path.join(os.path.dirname(toy_models["onnx"]), "refuses_nan.pt")
    if not os.path.exists(path):
        torch.jit.script(RefusesNaN()).save(path)
    return path
