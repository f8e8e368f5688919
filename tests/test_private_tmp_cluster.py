"""Every feature on a cluster whose machines share no disk: a standalone cluster whose two workers
each have a /tmp and a home of their own (``deepframes cluster start --private-tmp``), a shared
folder outside /tmp for inputs and outputs, as NFS or HDFS would be, and the driver in this process
with the machine's /tmp. A feature that hands executors a path only the driver has fails here.

The answers are checked against local[2], computed once first (one switch of session each way).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import deepframes
from tests.apps import fixtures
from tests.conftest import LOCAL_MASTER, PETS_IMAGES, deepframes_command

SQUEEZENET = fixtures.SQUEEZENET
PHOTOS = str(PETS_IMAGES / "[AB]*_1?.jpg")  # Abyssinian_10-19 and Bengal_10-19


# ---- the references, on local[2] -----------------------------------------------------------------


def _tune_runs(spark) -> dict:
    """Two searches whose results must not depend on where trials ran: one-slot trials pruned by
    the median rule and scored by an evaluator (they read the shipped rows, report to the
    driver's board, and the evaluator reads the cached rows with each trial's model), and a
    two-slot trial (a Distributor run on the cached rows)."""
    import json

    from pyspark.ml.evaluation import MulticlassClassificationEvaluator

    from deepframes import TorchEstimator, tune
    from deepframes.training.examples import small_torch_mlp, two_blobs

    rows = two_blobs(spark, 300, seed=3)
    one_slot = TorchEstimator(model=small_torch_mlp, epochs=4, batchSize=20)
    pruned = tune(one_slot, rows, {"learningRate": [0.05, 1e-6, 1e-7]}, metric="accuracy", parallelism=1,
                  evaluator=MulticlassClassificationEvaluator(), early_stop="median", refit=False)
    two_slots = TorchEstimator(model=small_torch_mlp, epochs=2, batchSize=20, numSlots=2)
    distributed = tune(two_slots, rows, {"learningRate": [0.05]}, metric="val_accuracy", refit=False)
    # As JSON: NaN (a pruned trial's metric) compares equal to itself there.
    return {name: (json.loads(found.results.drop(columns=["seconds"]).to_json(orient="records")),
                   found.best_params) for name, found in (("pruned", pruned), ("distributed", distributed))}


def _plain(path: str) -> str:
    return path.removeprefix("file:")


def _features(spark, weights: str, out: Path) -> dict[str, np.ndarray]:
    from deepframes.apps.featurize import featurize_images

    featurize_images(PHOTOS, out, weights=weights, label="filename", spark=spark)
    return {_plain(row.path): np.asarray(row.features) for row in spark.read.parquet(str(out)).collect()}


@pytest.fixture(scope="module")
def on_local(spark_sessions, tmp_path_factory) -> dict:
    """What local[2] answers, computed before the first test switches to the cluster."""
    spark = spark_sessions.get(LOCAL_MASTER)
    return {"tune": _tune_runs(spark),
            "features": _features(spark, SQUEEZENET, tmp_path_factory.mktemp("local_features") / "features")}


@pytest.fixture
def driver_only(tmp_path) -> Path:
    """A folder in the driver's /tmp, which no executor sees."""
    return tmp_path


@pytest.fixture
def shared(private_tmp_cluster, request) -> Path:
    """A folder of this test on the shared storage."""
    folder = private_tmp_cluster.shared / request.node.name
    folder.mkdir()
    return folder


def _driver_only_weights(driver_only: Path) -> str:
    weights = driver_only / "weights" / "squeezenet.onnx"
    weights.parent.mkdir()
    shutil.copyfile(SQUEEZENET, weights)
    return str(weights)


# ---- bad input: one line, exit 2, nothing started -------------------------------------------------


def test_cluster_start_private_tmp_refuses_a_state_folder_in_tmp(tmp_path):
    result = deepframes_command("cluster", "start", "--workers", "1", "--private-tmp",
                                "--state-dir", str(tmp_path / "state"))
    assert result.returncode == 2, result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    assert ("cannot see a state folder inside /tmp" in message or "private /tmp cannot start" in message), message
    assert not (tmp_path / "state").exists()


# ---- on the cluster ------------------------------------------------------------------------------


@pytest.mark.cluster
@pytest.mark.slow
def test_tune_on_private_tmp_workers_matches_local(on_local, private_tmp_spark):
    on_cluster = _tune_runs(private_tmp_spark)
    results, best = on_cluster["pruned"]
    assert [row["status"] for row in results] == ["ok", "ok", "pruned"]
    assert best == {"learningRate": 0.05} and results[0]["metric"] >= 0.9
    results, best = on_cluster["distributed"]
    assert [row["status"] for row in results] == ["ok"] and len(results[0]["val_accuracy_per_epoch"]) == 2
    assert on_cluster == on_local["tune"]


@pytest.mark.cluster
@pytest.mark.slow
def test_workers_see_none_of_the_driver_tmp(private_tmp_spark, private_tmp_cluster, driver_only):
    marker = driver_only / "driver-only.txt"
    marker.write_text("only the driver has me")
    shared_file = private_tmp_cluster.shared / "shared.txt"
    shared_file.write_text("everyone has me")

    def look(_):
        import os
        import tempfile

        yield (os.path.exists(str(marker)), os.path.exists(str(shared_file)), os.path.expanduser("~"),
               tempfile.gettempdir())

    seen = private_tmp_spark.sparkContext.parallelize(range(4), 4).mapPartitions(look).collect()
    assert {(driver_file_seen, shared_file_seen) for driver_file_seen, shared_file_seen, _, _ in seen} == {
        (False, True)}
    assert {(home, tmp) for _, _, home, tmp in seen} == {("/tmp/deepframes-worker/home", "/tmp")}
    assert os.path.expanduser("~") != "/tmp/deepframes-worker/home"
    executors = private_tmp_spark.sparkContext._jsc.sc().getExecutorMemoryStatus().keys().toList()
    hosts = {executors.apply(index).split(":")[0] for index in range(executors.size())}
    assert {"127.0.0.2", "127.0.0.3"} <= hosts  # one address per worker: two hosts to Spark


@pytest.mark.cluster
@pytest.mark.slow
def test_featurize_train_predict_with_weights_only_the_driver_has(on_local, private_tmp_spark, driver_only,
                                                                  shared):
    from deepframes.apps.predict import predict_to_folder
    from deepframes.apps.train import train_classifier

    weights = _driver_only_weights(driver_only)
    features = _features(private_tmp_spark, weights, shared / "features")
    assert sorted(features) == sorted(on_local["features"])
    worst = max(float(np.max(np.abs(features[path] - on_local["features"][path]))) for path in features)
    assert worst <= 1e-5, worst
    trained = train_classifier(str(shared / "features"), shared / "model", weights=weights, spark=private_tmp_spark)
    assert trained.num_train + trained.num_test == 20
    shutil.rmtree(driver_only / "weights")  # the model folder must carry what predict needs
    predicted = predict_to_folder(str(shared / "model"), PHOTOS, str(shared / "predictions"),
                                  spark=private_tmp_spark)
    assert (predicted.num_photos, predicted.num_failed) == (20, 0)
    rows = private_tmp_spark.read.parquet(str(shared / "predictions")).collect()
    right = sum(row.label == Path(row.path).name.split("_")[0] for row in rows)
    assert right >= 16, [(row.path, row.label) for row in rows]


@pytest.mark.cluster
@pytest.mark.slow
def test_image_featurizer_stage_and_sql_function(on_local, private_tmp_spark, driver_only):
    from deepframes import ImageFeaturizer, read_images, register_udf

    weights = _driver_only_weights(driver_only)
    images = read_images(PHOTOS, size=(224, 224), spark=private_tmp_spark)
    stage = ImageFeaturizer(model="squeezenet1.1", weights=weights)
    by_stage = {_plain(row.path): np.asarray(row.features)
                for row in stage.transform(images).select("path", "features").collect()}
    register_udf(private_tmp_spark, "squeezenet_features", stage)
    images.createOrReplaceTempView("photos")
    by_sql = {_plain(row.path): np.asarray(row.features) for row in private_tmp_spark.sql(
        "SELECT path, squeezenet_features(image) AS features FROM photos").collect()}
    expected = on_local["features"]
    assert sorted(by_stage) == sorted(by_sql) == sorted(expected)
    for path, vector in expected.items():
        np.testing.assert_allclose(by_stage[path], vector, atol=1e-5, err_msg=path)
        np.testing.assert_allclose(by_sql[path], vector, atol=1e-5, err_msg=path)


@pytest.mark.cluster
@pytest.mark.slow
def test_map_blocks_with_a_torch_module(private_tmp_spark):
    import torch

    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    values = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    frame = private_tmp_spark.createDataFrame([(row.tolist(),) for row in values], "x array<float>").repartition(2)
    mapped = deepframes.map_blocks(lambda block: {"y": layer(torch.tensor(block["x"]))}, frame)
    found = np.array([row.y for row in mapped.collect()], dtype=np.float32)
    with torch.no_grad():
        expected = layer(torch.as_tensor(values)).numpy()
    order = np.lexsort(found.T), np.lexsort(expected.T)
    np.testing.assert_allclose(found[order[0]], expected[order[1]], atol=1e-6)


@pytest.mark.cluster
@pytest.mark.slow
def test_torch_estimator_on_two_slots_saved_to_shared_storage(private_tmp_spark, shared):
    from deepframes import TorchEstimator
    from deepframes.training.examples import small_torch_mlp, two_blobs
    from deepframes.training.model import ClassifierModel

    rows = two_blobs(private_tmp_spark, 200)
    fitted = TorchEstimator(model=small_torch_mlp, epochs=3, batchSize=20, numSlots=2).fit(rows)
    assert fitted.summary_["num_slots"] == 2
    test = two_blobs(private_tmp_spark, 100, seed=1)
    expected = [row.prediction for row in fitted.transform(test).select("prediction").collect()]
    fitted.write().overwrite().save(str(shared / "classifier"))
    loaded = ClassifierModel.load(str(shared / "classifier"))
    assert [row.prediction for row in loaded.transform(test).select("prediction").collect()] == expected
    assert sum(prediction == row.label for prediction, row in zip(expected, test.collect())) >= 90
