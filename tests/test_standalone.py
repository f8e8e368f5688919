"""A real standalone cluster on this machine (``deepframes cluster start``): same results as local[2],
training, the study, and nothing left running afterwards."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

import deepframes
from deepframes import standalone
from tests.apps import fixtures
from tests.conftest import deepframes_command, start_standalone, stop_standalone
from tests.distributed import workloads

SQUEEZENET = fixtures.SQUEEZENET


def _vectors(rows) -> dict[str, np.ndarray]:
    return {row.path: np.asarray(row.features.toArray() if hasattr(row.features, "toArray") else row.features)
            for row in rows}


def featurize_pets(spark, pets_images, weights: str = SQUEEZENET):
    images = deepframes.read_images(str(pets_images), label="filename", size=(224, 224), spark=spark)
    features = deepframes.ImageFeaturizer(model="squeezenet1.1", weights=weights).transform(images)
    return features.where("error is null").select("path", "features")


def reference_features(spark_sessions, pets_images, tmp_path_factory) -> dict[str, np.ndarray]:
    """The pets' features computed on local[2] (the reference), by path."""
    folder = fixtures.pets_features(spark_sessions, pets_images, tmp_path_factory)
    spark = spark_sessions.get("local[2]")
    return _vectors(spark.read.parquet(str(folder)).select("path", "features").collect())


@pytest.fixture(scope="module")
def local_features(spark_sessions, pets_images, tmp_path_factory) -> dict[str, np.ndarray]:
    """The pets' features computed on local[2] (the reference)."""
    return reference_features(spark_sessions, pets_images, tmp_path_factory)


def assert_same_features(found: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert sorted(found) == sorted(expected)
    worst = max(float(np.max(np.abs(found[path] - expected[path]))) for path in expected)
    assert worst <= 1e-5, worst


# ---- bad input: one line, exit 2, fast; no Spark needed ---------------------------------------


def test_cluster_stop_with_nothing_running_exits_2(tmp_path):
    result = deepframes_command("cluster", "stop", "--state-dir", str(tmp_path / "none"))
    assert result.returncode == 2
    assert "nothing to stop" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cluster_status_with_nothing_running(tmp_path):
    result = deepframes_command("cluster", "status", "--state-dir", str(tmp_path / "none"), "--json")
    assert result.returncode == 0 and '"running": false' in result.stdout


@pytest.mark.parametrize("arguments, message", [
    (["--workers", "64"], r"need 64 cores, but this machine has"),
    (["--workers", "1", "--memory", "4096g"], r"MB available"),
    (["--workers", "0"], r"number of workers must be a positive integer"),
    (["--memory", "lots"], r"such as 1g or 512m"),
])
def test_cluster_start_the_machine_cannot_hold_exits_2(tmp_path, arguments, message):
    import re

    result = deepframes_command("cluster", "start", *arguments, "--state-dir", str(tmp_path / "c"))
    assert result.returncode == 2, result.stderr
    assert re.search(message, result.stderr) and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("master", ["spark://127.0.0.1:1", "spark://127.0.0.1:{http}"])
def test_a_master_that_does_not_answer_is_one_line_in_seconds(master, tmp_path):
    import http.server
    import threading

    # An HTTP server where a Spark master should be: it accepts the connection but is no master.
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    started = time.monotonic()
    try:
        result = deepframes_command("images", str(tmp_path), "--master", master.format(http=server.server_port))
    finally:
        server.shutdown()
    assert time.monotonic() - started < 30
    assert result.returncode == 2
    assert "does not answer" in result.stderr and "deepframes cluster start" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# ---- on the cluster ----------------------------------------------------------------------------


@pytest.mark.cluster
def test_cluster_start_status_stop_leaves_nothing_running(tmp_path):
    state = tmp_path / "state"
    info = start_standalone(state, workers=1)
    assert info["master_url"].startswith("spark://") and info["web_ui"].startswith("http://")
    assert info["alive_workers"] == 1
    status = deepframes_command("cluster", "status", "--state-dir", str(state))
    assert status.returncode == 0 and info["master_url"] in status.stdout and "1 alive of 1" in status.stdout
    again = deepframes_command("cluster", "start", "--workers", "1", "--state-dir", str(state))
    assert again.returncode == 2 and "already running" in again.stderr
    pids = [process["pid"] for process in info["processes"]]
    stop_standalone(state)
    assert not state.exists()
    assert [pid for pid in pids if standalone._start_time(pid) is not None] == []  # zombies have ended
    master_port = int(info["master_url"].rsplit(":", 1)[1])
    with pytest.raises(OSError):
        import socket

        socket.create_connection(("127.0.0.1", master_port), timeout=2).close()


@pytest.mark.cluster
@pytest.mark.slow
def test_featurize_on_standalone_matches_local(standalone_spark, standalone_cluster, pets_images, local_features,
                                               tmp_path):
    assert standalone_spark.sparkContext.master == standalone_cluster["master_url"]
    # The model file is shipped, then renamed: executors can only use the shipped copy.
    weights = tmp_path / "squeezenet.onnx"
    shutil.copyfile(SQUEEZENET, weights)
    features = featurize_pets(standalone_spark, pets_images, str(weights))
    weights.rename(tmp_path / "moved.onnx")
    rows = features.collect()
    assert_same_features(_vectors(rows), local_features)
    # The driver's block manager is listed too; the other two are the workers' executors.
    assert standalone_spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1 == 2


@pytest.mark.cluster
@pytest.mark.slow
def test_distributor_trains_on_standalone(standalone_spark):
    from deepframes.distributed import Distributor

    results = Distributor(2, return_ranks="all").run(workloads.torch_ddp_train)
    workloads.assert_trained_identically(results)


@pytest.mark.cluster
@pytest.mark.slow
def test_study_command_on_standalone(standalone_cluster, spark_sessions, pets_images, tmp_path_factory, tmp_path):
    features = fixtures.pets_features(spark_sessions, pets_images, tmp_path_factory)
    spark_sessions.stop()  # the command starts its own driver
    result = deepframes_command("study", str(features), "--classes", "Abyssinian,Bengal", "--splits", "0.5,0.8",
                                "--out", str(tmp_path / "study"), "--master", standalone_cluster["master_url"],
                                timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 trainings (1 pairs)" in result.stdout
    assert (tmp_path / "study" / "report.md").exists()


def test_parse_memory_and_capacity_errors():
    assert standalone.parse_memory("2g") == 2048
    with pytest.raises(ValueError, match="cores, but this machine has"):
        standalone.check_capacity((os.cpu_count() or 1) + 1, 1, "1g")


@pytest.mark.cluster
@pytest.mark.slow
def test_spark_submit_script_runs_on_the_submitted_master(standalone_cluster, spark_sessions, tmp_path):
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    spark_sessions.stop()  # the submitted application takes the workers' cores
    script = tmp_path / "job.py"
    script.write_text(
        "import deepframes\n"
        "spark = deepframes.session()\n"
        f"df = deepframes.read_images({str(REPO_ROOT.parent / 'shared/data/pets/images/Bengal_1?.jpg')!r}, "
        "size=(224, 224), spark=spark)\n"
        f"features = deepframes.ImageFeaturizer(weights={SQUEEZENET!r}).transform(df)\n"
        "print('RESULT', spark.sparkContext.master, features.count())\n"
    )
    bin_folder = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_folder}:{os.environ['PATH']}"}
    env.pop("DEEPFRAMES_MASTER", None)
    submitted = subprocess.run(
        [str(bin_folder / "spark-submit"), "--master", standalone_cluster["master_url"],
         "--conf", "spark.executor.cores=1", "--conf", "spark.executor.memory=1g",
         "--conf", f"spark.pyspark.python={sys.executable}", "--conf", f"spark.executorEnv.PYTHONPATH={REPO_ROOT}",
         str(script)], capture_output=True, text=True, timeout=600, env=env, check=False)
    assert f"RESULT {standalone_cluster['master_url']} 10" in submitted.stdout, submitted.stderr[-2000:]


@pytest.mark.cluster
@pytest.mark.slow
def test_pipeline_saved_on_the_cluster_to_a_hadoop_uri_predicts_the_same_elsewhere(
        standalone_spark, spark_sessions, pets_images, tmp_path):
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import StringIndexer

    from tests.test_storage import mount

    def labelled(spark):
        return deepframes.read_images(str(pets_images / "[AB][be]*_1?.jpg"), label="filename", size=(224, 224),
                                      spark=spark).where("error is null")

    def predictions(model, spark):
        return {row.path: row.prediction for row in model.transform(labelled(spark)).select("path", "prediction").collect()}

    pipeline = Pipeline(stages=[deepframes.ImageFeaturizer(weights=SQUEEZENET), StringIndexer(inputCol="label", outputCol="y"),
                                LogisticRegression(labelCol="y", maxIter=20)])
    model = pipeline.fit(labelled(standalone_spark))
    expected = predictions(model, standalone_spark)
    uri = f"{mount(standalone_spark, tmp_path)}/model"
    model.write().overwrite().save(uri)
    elsewhere = spark_sessions.get("local[2]")
    from pyspark.ml import PipelineModel

    loaded = PipelineModel.load(uri.replace(uri.split("/")[2], mount(elsewhere, tmp_path).split("/")[2]))
    assert len(expected) == 20 and predictions(loaded, elsewhere) == expected
