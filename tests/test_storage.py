"""Stages and PipelineModels save to and load from any Hadoop file system URI (here viewfs://,
which Python's ``open`` cannot read), with their model files copied through Hadoop's API."""

from __future__ import annotations

import json
import shutil
import uuid

import numpy as np
import pytest
from pyspark.ml import PipelineModel

import deepframes
from deepframes import storage
from tests.conftest import SHARED

SQUEEZENET = str(SHARED / "models" / "squeezenet1.1.onnx")


def mount(spark, folder) -> str:
    """A viewfs:// URI whose /store is ``folder``; a fresh mount-table name per call (Hadoop caches
    file systems by authority)."""
    name = f"df{uuid.uuid4().hex[:8]}"
    spark.sparkContext._jsc.hadoopConfiguration().set(f"fs.viewfs.mounttable.{name}.link./store", f"file://{folder}")
    return f"viewfs://{name}/store"


def _features(df) -> dict[str, np.ndarray]:
    return {row.path: row.features.toArray() if hasattr(row.features, "toArray") else np.asarray(row.features)
            for row in df.select("path", "features").collect()}


def test_pipeline_saved_to_a_hadoop_uri_loads_and_predicts_the_same(spark, pets_images, tmp_path):
    root = mount(spark, tmp_path)
    images = deepframes.read_images(str(pets_images / "Bengal_1?.jpg"), size=(224, 224), spark=spark)
    featurizer = deepframes.ImageFeaturizer(model="squeezenet1.1", weights=SQUEEZENET, batchSize=4)
    pipeline = PipelineModel(stages=[featurizer])
    expected = _features(pipeline.transform(images))
    uri = f"{root}/model"
    pipeline.write().overwrite().save(uri)
    with pytest.raises(OSError):
        open(uri, "rb")
    assert storage.exists(spark, f"{uri}/stages")
    stage_folder = next(p for p in (tmp_path / "model" / "stages").iterdir())
    metadata = json.loads(next((stage_folder / "metadata").glob("part-*")).read_text())
    assert metadata["files"] == {"weights": "squeezenet1.1.onnx"}
    assert (stage_folder / "files" / "weights" / "squeezenet1.1.onnx").read_bytes() == open(SQUEEZENET, "rb").read()
    loaded = PipelineModel.load(uri)
    found = _features(loaded.transform(images))
    assert sorted(found) == sorted(expected)
    assert max(float(np.max(np.abs(found[p] - expected[p]))) for p in expected) <= 1e-5


def test_a_stage_saved_to_a_hadoop_uri_round_trips(spark, tmp_path):
    uri = f"{mount(spark, tmp_path)}/featurizer"
    featurizer = deepframes.ImageFeaturizer(model="squeezenet1.1", weights=SQUEEZENET)
    featurizer.save(uri)
    loaded = deepframes.ImageFeaturizer.load(uri)
    assert loaded.uid == featurizer.uid
    assert open(loaded.getOrDefault("weights"), "rb").read() == open(SQUEEZENET, "rb").read()


@pytest.mark.parametrize("uri, package", [
    ("s3a://bucket/models/featurizer", "org.apache.hadoop:hadoop-aws:"),
    ("abfss://models@account.dfs.core.windows.net/featurizer", "org.apache.hadoop:hadoop-azure:"),
])
def test_a_scheme_without_file_system_names_the_package(spark, uri, package):
    featurizer = deepframes.ImageFeaturizer(model="squeezenet1.1", weights=SQUEEZENET)
    with pytest.raises(ValueError, match=f"No Hadoop file system is configured for .*{package}"):
        featurizer.save(uri)


def test_read_images_reads_a_hadoop_uri(spark, pets_images, tmp_path):
    for name in ("Bengal_10.jpg", "Bengal_11.jpg"):
        shutil.copyfile(pets_images / name, tmp_path / name)
    uri = mount(spark, tmp_path)
    df = deepframes.read_images(uri, label="filename", spark=spark)
    rows = df.collect()
    assert sorted(row.path.rsplit("/", 1)[-1] for row in rows) == ["Bengal_10.jpg", "Bengal_11.jpg"]
    assert all(row.path.startswith("viewfs://") and row.error is None for row in rows)


def test_cli_writes_every_out_to_a_hadoop_uri(spark, capsys, pets_images, tmp_path):
    from deepframes.apps.featurize import SIDECAR
    from deepframes.apps.outputs import MARKER
    from tests.apps.helpers import last_json, run_cli

    root = mount(spark, tmp_path)
    features, model, report, predictions = (f"{root}/{name}" for name in ("features", "model", "report", "watch"))
    for run in range(2):  # the second run replaces what the first wrote
        code, out, err = run_cli(capsys, "featurize", str(pets_images / "[AB]*_1?.jpg"), "--weights", SQUEEZENET,
                                 "--out", features, "--json")
        assert code == 0, err
        assert last_json(out)["out"] == features and last_json(out)["num_images"] == 20
    with pytest.raises(OSError):
        open(features, "rb")
    written = tmp_path / "features"
    assert (written / SIDECAR).exists() and (written / MARKER).exists() and any(written.glob("*.parquet"))

    code, out, err = run_cli(capsys, "train", features, "--out", model, "--json")
    assert code == 0, err
    assert last_json(out)["out"] == model
    assert {"metadata", "stages", "confusion_matrix.png", "metrics.json", MARKER} <= {p.name for p in (tmp_path / "model").iterdir()}

    code, out, err = run_cli(capsys, "study", features, "--out", report, "--splits", "0.5", "--json")
    assert code == 0, err
    assert {"report.md", "results.csv", "plots", "models", MARKER} <= {p.name for p in (tmp_path / "report").iterdir()}

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copyfile(pets_images / "Bengal_10.jpg", inbox / "Bengal_10.jpg")
    code, out, err = run_cli(capsys, "predict", model, "--watch", f"{root}/inbox", "--out", predictions, "--once",
                             "--json")
    assert code == 0, err
    assert last_json(out)["num_photos"] == 1
    assert [row.path.rsplit("/", 1)[-1] for row in spark.read.json(predictions).collect()] == ["Bengal_10.jpg"]
    # Nothing half-written left beside the outputs.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features", "inbox", "model", "report", "watch"]


@pytest.mark.parametrize("verb", [["featurize", "../shared/data/pets/images/Bengal_1?.jpg", "--weights", SQUEEZENET],
                                  ["train", "features", "--weights", SQUEEZENET], ["study", "features"]])
def test_cli_out_on_a_scheme_without_file_system_is_one_line_naming_the_package(spark, capsys, tmp_path, verb):
    from tests.apps.helpers import one_line_error, run_cli

    (tmp_path / "features").mkdir()  # exists, so the check of --out's file system is what refuses
    verb = [str(tmp_path / "features") if word == "features" else word for word in verb]
    code, _, err = run_cli(capsys, *verb, "--out", "s3a://bucket/out")
    assert code == 2
    assert "No Hadoop file system is configured for s3a://" in one_line_error(err, verb[0])
    assert "org.apache.hadoop:hadoop-aws:" in err
