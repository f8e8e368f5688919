"""A failed, cancelled or killed run leaves no rank folder (spec, shard, result files) behind."""

from __future__ import annotations

import os
import tempfile
import time

import pytest

from deepframes.distributed import Distributor, RankFailedError
from deepframes.distributed.cleanup import FolderGuard
from tests.conftest import LOCAL_MASTER
from tests.distributed import workloads


@pytest.fixture(scope="module")
def rank_tmp(tmp_path_factory) -> str:
    """The temporary folder the Python workers (and so the ranks' folders) use in these tests."""
    return str(tmp_path_factory.mktemp("rank_tmp"))


@pytest.fixture
def tmp_spark(spark_sessions, rank_tmp):
    return spark_sessions.get(LOCAL_MASTER, **{"spark.executorEnv.TMPDIR": rank_tmp})


def _left_behind(folder: str, timeout: float = 20.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        found = sorted(name for name in os.listdir(folder) if name.startswith("deepframes-"))
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _workers_tmp(spark) -> str:
    return spark.range(1).rdd.map(lambda _: tempfile.gettempdir()).first()


def test_failed_cancelled_and_killed_runs_remove_their_rank_folders(tmp_spark, rank_tmp, tmp_path):
    assert _workers_tmp(tmp_spark) == rank_tmp
    assert _left_behind(rank_tmp, timeout=0) == []
    pids = tmp_path / "pids"
    pids.mkdir()
    df = tmp_spark.range(40).selectExpr("id", "array(cast(id as float), 1.0f) as x", "cast(id % 2 as int) as y")
    # a rank raises (the other is cancelled), with a shard each
    with pytest.raises(RankFailedError, match="boom on rank 1"):
        Distributor(2).run(workloads.raise_on_rank_with_shard, df, 1)
    # a rank is SIGKILLed, the other hangs until its task is killed
    with pytest.raises(RankFailedError, match="killed by signal SIGKILL"):
        Distributor(2).run(workloads.kill_rank_one, str(pids))
    # a timeout cancels the job with both ranks hung
    with pytest.raises(RankFailedError, match="did not finish within timeout"):
        Distributor(2, timeout=4).run(workloads.hang, str(pids))
    assert workloads.wait_until_gone(str(pids)) == []
    assert _left_behind(rank_tmp) == []


def test_folder_guard_removes_the_folder_when_its_owner_is_killed(tmp_path):
    import subprocess
    import sys

    folder = tmp_path / "owned"
    script = ("import sys, time; from deepframes.distributed.cleanup import FolderGuard; "
              f"FolderGuard({str(folder)!r}); print('ready', flush=True); time.sleep(600)")
    folder.mkdir()
    (folder / "shard.arrow").write_bytes(b"x")
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert owner.stdout.readline().strip() == "ready"
    owner.kill()
    owner.wait()
    deadline = time.monotonic() + 10
    while folder.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not folder.exists()


def test_folder_guard_leaves_no_watcher_after_close(tmp_path):
    guard = FolderGuard(str(tmp_path / "gone"))
    guard.close()
    assert guard._watcher.poll() is not None
