"""A lost worker or executor on a standalone cluster: no row lost or doubled, training resumes."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from deepframes import standalone
from deepframes.distributed import Distributor
from tests.conftest import (
    STANDALONE_CONF,
    start_standalone,
    stop_standalone,
    wait_for_executors,
)
from tests.distributed import workloads
from tests.test_standalone import (
    _vectors,
    assert_same_features,
    featurize_pets,
    reference_features,
)

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture(scope="module")
def local_features(spark_sessions, pets_images, tmp_path_factory) -> dict[str, np.ndarray]:
    """The pets' features computed on local[2] (the reference)."""
    return reference_features(spark_sessions, pets_images, tmp_path_factory)


@pytest.fixture
def own_cluster(spark_sessions, tmp_path):
    """A cluster of its own (2 workers, 1 core each): these tests break it."""
    state = tmp_path / "state"
    info = start_standalone(state)
    spark = spark_sessions.get(info["master_url"], **STANDALONE_CONF)
    wait_for_executors(spark, 2)
    try:
        yield info, spark
    finally:
        spark_sessions.stop()
        stop_standalone(state)
        assert standalone.processes_left(str(state)) == []


def _in_background(work) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as error:  # noqa: BLE001 - handed to the test
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _featurizing_midway(spark) -> bool:
    tracker = spark.sparkContext.statusTracker()
    for stage_id in tracker.getActiveStageIds():
        info = tracker.getStageInfo(stage_id)
        if info and info.numTasks >= 4 and info.numCompletedTasks >= 1 and info.numActiveTasks >= 1:
            return True
    return False


def test_featurization_survives_a_killed_worker(own_cluster, pets_images, local_features):
    info, spark = own_cluster
    features = featurize_pets(spark, pets_images)
    thread, outcome = _in_background(features.collect)
    _wait_until(lambda: _featurizing_midway(spark), 300, "the featurizing stage to be half-way")
    worker = next(process for process in info["processes"] if process["role"] == "worker-1")
    os.kill(worker["pid"], signal.SIGKILL)
    thread.join(600)
    assert "error" not in outcome, outcome.get("error")
    rows = outcome["value"]
    paths = [row.path for row in rows]
    assert len(paths) == len(set(paths)) == len(local_features)  # every row exactly once
    assert_same_features(_vectors(rows), local_features)


def _executor_of(pid: int) -> int:
    """The executor JVM a rank process runs under (its nearest java ancestor)."""
    while pid > 1:
        stat = Path(f"/proc/{pid}/stat").read_text()
        parent = int(stat[stat.rindex(")") + 2:].split()[1])
        command = Path(f"/proc/{parent}/cmdline").read_bytes()
        if b"CoarseGrainedExecutorBackend" in command:
            return parent
        pid = parent
    raise AssertionError("no executor JVM above the rank process")


def test_distributor_resumes_from_checkpoint_after_a_killed_executor(own_cluster, tmp_path):
    _, spark = own_cluster
    markers, checkpoints = tmp_path / "markers", tmp_path / "checkpoints"
    markers.mkdir()
    checkpoints.mkdir()
    distributor = Distributor(2, max_retries=1, checkpoint_dir=str(checkpoints), timeout=400)
    thread, outcome = _in_background(lambda: distributor.run(workloads.checkpointed_steps, 6, str(markers)))
    rank_pid = markers / "rank-1.pid"
    _wait_until(lambda: rank_pid.exists() and rank_pid.read_text(), 300, "rank 1 to reach its checkpoint")
    os.kill(_executor_of(int(rank_pid.read_text())), signal.SIGKILL)
    thread.join(600)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["value"] == {"attempt": 1, "resumed_from": 3, "step": 6}
    assert np.isclose(len(list(markers.iterdir())), 2)
