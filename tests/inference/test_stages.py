"""Every inference stage passes one conformance test: copy, Params, save/load, pass-through
columns, empty partitions, nulls; plus the stages' own bad-input errors."""

from __future__ import annotations

import os

import numpy as np
import pytest
from pyspark.errors import PythonException
from pyspark.ml import Pipeline, PipelineModel
from pyspark.sql import functions as F

import deepframes
from tests.conftest import SHARED, assert_no_job
from tests.inference.conftest import reference

SQUEEZENET = str(SHARED / "models" / "squeezenet1.1.onnx")


def _images(spark, pets_images):
    images = deepframes.read_images(str(pets_images / "Bengal_1*.jpg"), size=(64, 64), spark=spark).limit(6)
    return images.withColumn("keep_me", images.path)


def _texts(spark):
    texts = ["a red photo", "a dog", "two dogs run in the park at night", "snow", "the cat sleeps", "unknown words"]
    return spark.createDataFrame(list(enumerate(texts)), "id long, text string").withColumn("keep_me", F.col("id") * 2)


def _toy(spark):
    toy = spark.createDataFrame([(i, [float(i)] * 4) for i in range(6)], "id long, x array<float>")
    return deepframes.append_shape(toy, "x", [None, 4]).withColumn("keep_me", toy.id * 2)


STAGES = {
    "ModelTransformer": lambda models: deepframes.ModelTransformer(
        model=models["onnx"], inputCols=["x"], outputCols=["y"], batchSize=4),
    "ModelTransformer-torch.export": lambda models: deepframes.ModelTransformer(
        model=models["torch_export"], inputCols=["x"], outputCols=["y"], batchSize=4),
    # TorchScript cannot describe its outputs: planned from one run on a row of zeros, no job.
    "ModelTransformer-torchscript": lambda models: deepframes.ModelTransformer(
        model=models["torchscript"], inputCols=["x"], outputCols=["y"], batchSize=4),
    "ImageFeaturizer": lambda models: deepframes.ImageFeaturizer(model="squeezenet1.1", weights=SQUEEZENET, batchSize=4),
    "ImagePredictor": lambda models: deepframes.ImagePredictor(
        model="squeezenet1.1", weights=SQUEEZENET, topK=2, batchSize=4),
    "TextEmbedder": lambda models: deepframes.TextEmbedder(model=str(models["text"]), maxLength=16, batchSize=4),
}


@pytest.fixture(params=sorted(STAGES))
def case(request, spark, pets_images, toy_models, text_encoders):
    stage = STAGES[request.param]({**toy_models, "text": text_encoders["onnx"]})
    if isinstance(stage, deepframes.ModelTransformer):
        return stage, _toy(spark), "x", "y"
    if isinstance(stage, deepframes.TextEmbedder):
        return stage, _texts(spark), "text", "embedding"
    return stage, _images(spark, pets_images), "image", stage.getOutputCol()


def _values(df, column):
    return [None if row[column] is None else _Cell(row[column]) for row in df.orderBy("keep_me").select(column).collect()]


class _Cell:
    """An output cell compared as users compare model outputs: numbers to 1e-5 (a row's numbers
    may differ in the last bits with the rows batched beside it: PyTorch's CPU kernels block
    by batch size), everything else exactly."""

    def __init__(self, value) -> None:
        self.flat = list(_flatten(value))

    def __eq__(self, other) -> bool:
        if not isinstance(other, _Cell):
            return NotImplemented
        return len(self.flat) == len(other.flat) and all(
            a == pytest.approx(b, rel=1e-5, abs=1e-6) if isinstance(a, float) else a == b
            for a, b in zip(self.flat, other.flat))

    def __lt__(self, other) -> bool:
        return [str(x) for x in self.flat] < [str(x) for x in other.flat]

    def __repr__(self) -> str:
        return repr(self.flat)


def _flatten(value):
    if isinstance(value, (list, tuple)) or hasattr(value, "toArray"):
        for item in (value.toArray().tolist() if hasattr(value, "toArray") else value):
            yield from _flatten(item)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield float(value)
    else:
        yield value


def test_stage_conforms(case, spark, tmp_path):
    stage, df, input_column, output_column = case
    # copy with extra params leaves the original alone
    copied = stage.copy({stage.batchSize: 2})
    assert copied.getBatchSize() == 2 and stage.getBatchSize() == 4
    assert "batchSize" in stage.explainParams()
    # transform plans only: no Spark job, and no model loaded on the driver
    from deepframes.models import spec

    spec._ENGINES.clear()
    df = df.cache()
    df.count()
    assert_no_job(spark, lambda: stage.transform(df))
    if not isinstance(stage, deepframes.ModelTransformer) or stage.getOrDefault("model").endswith(".onnx"):
        assert not spec._ENGINES
    out = stage.transform(df)
    assert "keep_me" in out.columns and output_column in out.columns
    expected = _values(out, output_column)
    assert None not in expected
    # save/load round trip: same Params, same outputs, inside a Pipeline too
    folder = str(tmp_path / "stage")
    stage.write().overwrite().save(folder)
    loaded = type(stage).load(folder)
    assert loaded.uid == stage.uid
    assert {p.name: v for p, v in loaded.extractParamMap().items() if p.name not in stage.file_params} == \
           {p.name: v for p, v in stage.extractParamMap().items() if p.name not in stage.file_params}
    assert _values(loaded.transform(df), output_column) == expected
    pipeline = Pipeline(stages=[stage]).fit(df)
    pipeline.write().overwrite().save(folder + "-pipeline")
    assert _values(PipelineModel.load(folder + "-pipeline").transform(df), output_column) == expected
    # empty partitions (more partitions than rows)
    assert _values(stage.transform(df.repartition(12)), output_column) == expected
    # an empty DataFrame (an empty test split, a streaming micro-batch) transforms to no rows
    empty = stage.transform(df.limit(0))
    assert output_column in empty.columns and empty.collect() == []
    # rows whose input is null, first in the DataFrame: null outputs, the other rows unchanged
    nulls = df.limit(2).withColumn(input_column, F.lit(None).cast(df.schema[input_column].dataType))
    null_leading = stage.transform(nulls.unionByName(df).coalesce(1))
    received = [None if row[0] is None else _Cell(row[0]) for row in null_leading.select(output_column).collect()]
    assert received[:2] == [None, None] and sorted(received[2:]) == sorted(expected)
    # an output column that already exists is refused, never overwritten
    with pytest.raises(ValueError, match=rf"output column\(s\) \['{output_column}'\] already exist.*outputCol"):
        stage.transform(df.withColumn(output_column, F.lit(1)))
    df.unpersist()


class _CountRows:
    """A preprocessor that records how many rows reach the model (executors share this disk)."""

    def __init__(self, path):
        self.path = str(path)

    def __call__(self, batch):
        with open(self.path, "a") as handle:
            handle.write(f"{len(batch)}\n")
        return batch


def _rows_seen(path) -> list[int]:
    return [int(line) for line in open(path).read().split()] if os.path.exists(path) else []


def test_limit_before_a_stage_runs_the_model_on_about_that_many_rows(spark, toy_models, tmp_path):
    from dataclasses import replace

    from deepframes.inference.stage import apply_plan

    df = deepframes.append_shape(
        spark.range(2000, numPartitions=4).selectExpr("id", "array_repeat(cast(id as float), 4) AS x"), "x", [None, 4])
    stage = deepframes.ModelTransformer(model=toy_models["onnx"], inputCols=["x"], outputCols=["y"], batchSize=8)
    limited = df.limit(10)
    counter = tmp_path / "rows.txt"
    plan = replace(stage.inference_plan(limited.schema), preprocess=_CountRows(counter))
    rows = apply_plan(limited, plan, "ModelTransformer").collect()
    assert len(rows) == 10 and all(row.y is not None for row in rows)
    assert sum(_rows_seen(counter)) <= 16  # about 10, never the 2,000 rows


def test_batch_size_one_works(spark, toy_models):
    df = deepframes.append_shape(spark.createDataFrame([([float(i)] * 4,) for i in range(5)], "x array<float>"), "x", [None, 4])
    out = deepframes.ModelTransformer(model=toy_models["onnx"], inputCols=["x"], outputCols=["y"], batchSize=1).transform(df)
    got = np.array([row.y for row in out.orderBy(F.col("x")[0]).collect()])
    np.testing.assert_allclose(got, reference(np.array([[float(i)] * 4 for i in range(5)], np.float32)), atol=1e-5)


def test_null_inputs_give_null_outputs(spark, toy_models, pets_images, odd_images):
    toy = spark.createDataFrame([([1.0, 2.0, 3.0, 4.0],), (None,)], "x array<float>")
    out = deepframes.ModelTransformer(model=toy_models["onnx"], inputCols=["x"], outputCols=["y"]).transform(toy)
    rows = out.collect()
    assert [row.y is None for row in rows] == [False, True]
    np.testing.assert_allclose(rows[0].y, reference(np.array([[1.0, 2.0, 3.0, 4.0]], np.float32))[0], atol=1e-5)
    # images that failed to decode: null features and null predictions, and the row keeps its error
    images = deepframes.read_images(str(odd_images), spark=spark)
    featured = deepframes.ImageFeaturizer(model="squeezenet1.1", weights=SQUEEZENET).transform(images)
    predicted = deepframes.ImagePredictor(model="squeezenet1.1", weights=SQUEEZENET, topK=1).transform(featured)
    for row in predicted.collect():
        assert (row.features is None) == (row.error is not None) == (row.predictions is None), row.path


def test_featurizer_rejects_wrong_column_type(spark):
    df = spark.createDataFrame([("not an image",)], "image string")
    with pytest.raises(TypeError, match=r"column 'image' must be an image struct.*it is string"):
        deepframes.ImageFeaturizer(model="squeezenet1.1", weights=SQUEEZENET).transform(df)


def test_featurizer_rejects_unknown_model_and_pooling(spark, pets_images):
    images = _images(spark, pets_images)
    with pytest.raises(ValueError, match=r"The 'model' parameter of ImageFeaturizer must be one of \[.*Got 'AlexNet'"):
        deepframes.ImageFeaturizer(model="AlexNet")  # refused when built, before any data
    with pytest.raises(ValueError, match=r"average-pooled features only.*pooling='max'"):
        deepframes.ImageFeaturizer(model="squeezenet1.1", weights=SQUEEZENET, pooling="max").transform(images)
    with pytest.raises(FileNotFoundError, match=r"squeezenet1.1 needs its ONNX file"):
        deepframes.ImageFeaturizer(model="squeezenet1.1").transform(images)


def test_keras_application_featurizer_with_random_weights(spark, pets_images):
    images = _images(spark, pets_images).limit(3)
    featurizer = deepframes.ImageFeaturizer(model="MobileNetV2", weights=None, pooling="max", batchSize=2)
    rows = featurizer.transform(images).select("features").collect()
    assert [row.features.size for row in rows] == [1280] * 3
    assert all(np.isfinite(row.features.toArray()).all() for row in rows)


def test_featurizer_when_first_images_all_failed(spark, tmp_path):
    (tmp_path / "a_broken.jpg").write_bytes(b"not a picture")
    images = deepframes.read_images(str(tmp_path), spark=spark)
    out = deepframes.ImageFeaturizer(model="squeezenet1.1", weights=SQUEEZENET).transform(images)
    (row,) = out.collect()
    assert row.features is None and row.error.startswith("not an image")


def test_featurizer_decodes_encoded_files_like_read_images(spark, pets_images, odd_images):
    featurizer = deepframes.ImageFeaturizer(model="squeezenet1.1", weights=SQUEEZENET, batchSize=4)
    pattern = str(pets_images / "Abyssinian_3*.jpg")
    structs = featurizer.transform(deepframes.read_images(pattern, size=(224, 224), spark=spark))
    files = deepframes.read_images(pattern, decode=False, label="filename", spark=spark)
    assert files.columns == ["path", "content", "label"]
    encoded = featurizer.copy({featurizer.inputCol: "content"}).transform(files)
    expected = {row.path: row.features.toArray() for row in structs.collect()}
    received = {row.path: row.features.toArray() for row in encoded.collect()}
    assert received.keys() == expected.keys() and len(received) == 8
    for path, features in received.items():
        np.testing.assert_allclose(features, expected[path], atol=1e-5, err_msg=path)
    # files that cannot be decoded give null features; the good ones still get theirs
    odd = deepframes.read_images(str(odd_images), decode=False, spark=spark)
    decoded = deepframes.read_images(str(odd_images), spark=spark)
    broken = {row.path for row in decoded.collect() if row.error is not None}
    outcome = {row.path: row.features is None for row in featurizer.copy({featurizer.inputCol: "content"}).transform(odd).collect()}
    assert broken and {path for path, null in outcome.items() if null} == broken


def test_read_images_without_decoding_rejects_decoding_options(spark, pets_images):
    with pytest.raises(ValueError, match=r"decode=False.*`size`, `resample`, `errors` and `max_pixels` cannot apply.*size=8\b"):
        deepframes.read_images(str(pets_images), decode=False, size=8, spark=spark)


def test_model_output_shape_that_changes_is_named(spark, tmp_path):
    import torch

    class Gram(torch.nn.Module):  # (n, 4) -> (n, n): the cell shape depends on the batch size
        def forward(self, x):
            return x @ x.T

    path = str(tmp_path / "gram.pt")
    torch.jit.script(Gram()).save(path)
    df = spark.createDataFrame([([float(i)] * 4,) for i in range(8)], "x array<float>").coalesce(1)
    out = deepframes.ModelTransformer(model=path, inputCols=["x"], outputCols=["g"], batchSize=8).transform(df)
    with pytest.raises(PythonException, match=r"'g' changed cell shape.*expected \[1\], received \[8\].*every batch"):
        out.collect()
