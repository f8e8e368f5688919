"""Fixtures of the distributed tests: a folder for rank pids and a session with fake GPUs."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

GPU_MASTER = "local-cluster[1,2,1024]"


class FakeSpark:
    """Stands in for a SparkSession where a check reads only settings."""

    def __init__(self, conf: dict[str, str]) -> None:
        self.sparkContext = self
        self._conf = conf

    def getConf(self) -> FakeSpark:
        return self

    def get(self, key: str, default: str | None = None) -> str | None:
        return self._conf.get(key, default)


@pytest.fixture
def pid_folder(tmp_path: Path) -> str:
    folder = tmp_path / "pids"
    folder.mkdir()
    return str(folder)


@pytest.fixture(scope="session")
def gpu_discovery_script(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A discovery script reporting two GPUs, as PySpark's own GPU tests use."""
    script = tmp_path_factory.mktemp("gpus") / "discover_gpus.sh"
    script.write_text(
        "#!/bin/sh\necho '"
        + json.dumps({"name": "gpu", "addresses": ["0", "1"]})
        + "'\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


@pytest.fixture
def gpu_cluster_spark(spark_sessions, gpu_discovery_script: str) -> SparkSession:
    """One executor with 2 cores and 2 (fake) GPUs; each task asks for one GPU. The executor's
    CUDA_VISIBLE_DEVICES is pre-set, as a container runtime would, so Spark's addresses index it."""
    return spark_sessions.get(
        GPU_MASTER,
        **{
            "spark.worker.resource.gpu.amount": "2",
            "spark.worker.resource.gpu.discoveryScript": gpu_discovery_script,
            "spark.executor.resource.gpu.amount": "2",
            "spark.task.resource.gpu.amount": "1",
            "spark.executorEnv.CUDA_VISIBLE_DEVICES": "5,7",
        },
    )
