"""deepframes.session: defaults, caller's settings kept, master resolution, Java check."""

from __future__ import annotations

import os
import stat
import sys

import pytest

import deepframes
from deepframes import _java
from deepframes.session import resolve_master


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
