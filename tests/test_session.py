"""deepframes.session: defaults, caller's settings kept, master resolution, Java check."""

from __future__ import annotations

import os
import stat
import sys

import pytest

import deepframes
from deepframes import _java
from deepframes.session import resolve_master, running_session


def test_session_sets_arrow_python_and_master(spark):
    assert spark.sparkContext.master == "local[2]"
    assert spark.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
    assert os.environ["PYSPARK_PYTHON"] == sys.executable
    # Python workers really run this interpreter (pandas and deepframes import there).
    workers = spark.sparkContext.parallelize([0, 1], 2).map(lambda _: __import__("sys").executable).collect()
    assert set(workers) == {sys.executable}


def test_session_keeps_callers_settings(spark):
    again = deepframes.session(**{"spark.sql.shuffle.partitions": "7"})
    try:
        assert again is spark
        assert again.conf.get("spark.sql.shuffle.partitions") == "7"
    finally:
        spark.conf.unset("spark.sql.shuffle.partitions")


def test_session_refuses_a_second_master(spark):
    with pytest.raises(ValueError, match=r"already running.*local-cluster\[2,1,1024\] cannot start.*spark.stop\(\)"):
        deepframes.session("local-cluster[2,1,1024]")


def test_resolve_master_order(monkeypatch):
    monkeypatch.delenv("DEEPFRAMES_MASTER", raising=False)
    assert resolve_master() == "local[*]"
    monkeypatch.setenv("DEEPFRAMES_MASTER", "spark://head:7077")
    assert resolve_master() == "spark://head:7077"
    assert resolve_master("local-cluster[2,1,1024]") == "local-cluster[2,1,1024]"


@pytest.fixture
def fake_java(tmp_path, monkeypatch):
    """Point JAVA_HOME at a `java` that reports the version given."""

    def install(version_line: str | None) -> None:
        if version_line is not None:
            (tmp_path / "bin").mkdir(exist_ok=True)
            java = tmp_path / "bin" / "java"
            java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
            java.chmod(java.stat().st_mode | stat.S_IEXEC)
        monkeypatch.setenv("JAVA_HOME", str(tmp_path))
        _java.find_java.cache_clear()

    yield install
    _java.find_java.cache_clear()


def test_require_java_names_old_java_and_fix(fake_java):
    fake_java('openjdk version "11.0.2" 2019-01-15')
    with pytest.raises(deepframes.JavaNotFoundError, match=r"found: .*java \(version 11.0.2\).*openjdk-17"):
        _java.require_java()


def test_require_java_when_missing(fake_java):
    fake_java(None)
    with pytest.raises(deepframes.JavaNotFoundError, match=r"Java 17 or newer; found: .*java, which does not exist \(JAVA_HOME=.*openjdk-17"):
        _java.require_java()


def test_session_refuses_to_start_without_java(fake_java, monkeypatch):
    fake_java('java version "1.8.0_382"')
    monkeypatch.setattr(sys.modules["deepframes.session"], "running_session", lambda: None)
    with pytest.raises(deepframes.JavaNotFoundError, match=r"version 1.8.0_382"):
        deepframes.session("local[1]")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('openjdk version "17.0.15" 2025-04-15', ("17.0.15", 17)),
        ('openjdk version "21" 2023-09-19', ("21", 21)),
        ('java version "1.8.0_382"', ("1.8.0_382", 8)),
        ("garbage", (None, None)),
    ],
)
def test_parse_java_version(text, expected):
    assert _java.parse_java_version(text) == expected


# ---- a new session after spark.stop() ---------------------------------------------------------

_AFTER_STOP = """
import sys
import deepframes
first = deepframes.session(sys.argv[1], **{k: v for k, v in (a.split("=", 1) for a in sys.argv[2:])})
first.range(2).count()
first.stop()
again = deepframes.session("local[1]")
conf = again.sparkContext.getConf()
print("LEFT", conf.get("spark.deepframes.test.marker", "none"), conf.get("spark.task.resource.gpu.amount", "none"),
      again.conf.get("spark.sql.shuffle.partitions"), flush=True)
print("COUNT", again.range(5).count(), flush=True)
"""


def _run_after_stop(tmp_path, master, settings, timeout):
    import subprocess

    from tests.conftest import REPO_ROOT

    script = tmp_path / "after_stop.py"
    script.write_text(_AFTER_STOP)
    arguments = [f"{key}={value}" for key, value in settings.items()]
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, str(script), master, *arguments],
        capture_output=True, text=True, timeout=timeout, env=environment, cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_session_after_stop_starts_from_defaults(tmp_path):
    # In a fresh process, as a notebook or script would be: the first session launches the JVM.
    out = _run_after_stop(
        tmp_path, "local[1]", {"spark.deepframes.test.marker": "stopped", "spark.sql.shuffle.partitions": "3"}, 240
    )
    assert "LEFT none none 200" in out
    assert "COUNT 5" in out


@pytest.mark.cluster
def test_session_after_a_gpu_cluster_session_runs_local_jobs(tmp_path):
    """The reported case: a session with GPU scheduling, stopped, then a local one that hung."""
    discovery = tmp_path / "gpus.sh"
    discovery.write_text("#!/bin/sh\necho '{\"name\": \"gpu\", \"addresses\": [\"0\"]}'\n")
    discovery.chmod(discovery.stat().st_mode | stat.S_IXUSR)
    gpus = {
        "spark.worker.resource.gpu.amount": "1",
        "spark.worker.resource.gpu.discoveryScript": str(discovery),
        "spark.executor.resource.gpu.amount": "1",
        "spark.task.resource.gpu.amount": "1",
    }
    out = _run_after_stop(tmp_path, "local-cluster[1,1,1024]", gpus, 300)
    assert "LEFT none none 200" in out
    assert "COUNT 5" in out


def test_session_refuses_task_gpus_in_local_mode_before_starting(spark_sessions):
    spark_sessions.stop()
    gpus = {"spark.executor.resource.gpu.amount": "1", "spark.task.resource.gpu.amount": "1"}
    with pytest.raises(ValueError, match=r"spark.task.resource.gpu.amount=1 asks for a 'gpu' per task.*local\[2\].*wait forever.*Remove spark.task.resource.gpu.amount"):
        deepframes.session("local[2]", **gpus)
    assert running_session() is None  # refused before starting one


def test_session_refuses_task_gpus_left_in_the_jvm(spark_sessions):
    """Settings Spark reads from elsewhere (spark-defaults.conf, system properties) are checked
    too: the job would otherwise hang, here it fails at once naming the setting."""
    from pyspark import SparkContext

    spark_sessions.get("local[2]")
    spark_sessions.stop()
    system = SparkContext._jvm.java.lang.System
    keys = ("spark.executor.resource.gpu.amount", "spark.task.resource.gpu.amount")
    try:
        for key in keys:
            system.setProperty(key, "1")
        with pytest.raises(ValueError, match=r"No job could run on this session: spark.task.resource.gpu.amount=1"):
            deepframes.session("local[2]")
        assert running_session() is None  # the one started to read the settings is stopped
    finally:
        for key in keys:
            system.clearProperty(key)
