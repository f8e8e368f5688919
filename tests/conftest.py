"""Shared fixtures: Spark sessions on local[2], local-cluster[2,1,1024], a standalone cluster
started with `deepframes cluster start` and one whose workers each have a private /tmp and home
(as machines that share no disk), and test images."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import deepframes
from deepframes.session import running_session
from pyspark.sql import SparkSession

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
PETS_IMAGES = SHARED / "data" / "pets" / "images"

LOCAL_MASTER = "local[2]"
CLUSTER_MASTER = "local-cluster[2,1,1024]"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # One SparkContext per process: run the cluster tests last so the session switches once.
    items.sort(key=lambda item: item.get_closest_marker("cluster") is not None)


class SparkSessions:
    """Hands out the session for a master (and extra settings), restarting Spark when they differ."""

    def __init__(self) -> None:
        self._conf: dict[str, str] = {}

    def get(self, master: str, **conf: str) -> SparkSession:
        active = running_session()
        if active is not None and active.sparkContext.master == master and conf == self._conf:
            return active
        if active is not None:
            active.stop()
        self._conf = dict(conf)
        # Executors import test helpers (pickled by reference) from the repository, as a user's
        # cluster would import their own modules shipped with --py-files.
        return deepframes.session(
            master, app_name="deepframes-tests", **{"spark.executorEnv.PYTHONPATH": str(REPO_ROOT), **conf}
        )

    def stop(self) -> None:
        active = running_session()
        if active is not None:
            active.stop()


@pytest.fixture(scope="session")
def spark_sessions():
    sessions = SparkSessions()
    yield sessions
    sessions.stop()


@pytest.fixture
def spark(spark_sessions: SparkSessions) -> SparkSession:
    """An embedded local[2] session."""
    return spark_sessions.get(LOCAL_MASTER)


@pytest.fixture
def cluster_spark(spark_sessions: SparkSessions) -> SparkSession:
    """local-cluster[2,1,1024]: two executor JVMs with their own Python workers."""
    return spark_sessions.get(CLUSTER_MASTER)


def deepframes_command(*arguments: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run the ``deepframes`` command of this checkout in a fresh process."""
    return subprocess.run([sys.executable, "-m", "deepframes.cli", *arguments], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO_ROOT, check=False)


def script_results(module: str, folder: Path, timeout: float = 900) -> dict:
    """Run ``python -m MODULE OUT.json`` (a separate process, e.g. for a Spark Connect session,
    which switches the whole process to Connect) and return the JSON it wrote."""
    out = folder / "results.json"
    run = subprocess.run([sys.executable, "-m", module, str(out)], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=timeout, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(out.read_text())


def start_standalone(state_dir: Path, workers: int = 2, *options: str) -> dict:
    """``deepframes cluster start`` with workers of 1 core and 1g (and ``options``, such as
    ``--private-tmp``); returns its JSON."""
    started = deepframes_command("cluster", "start", "--workers", str(workers), "--cores", "1", "--memory", "1g",
                                 "--state-dir", str(state_dir), "--json", *options)
    if started.returncode != 0:
        deepframes_command("cluster", "stop", "--state-dir", str(state_dir))
        pytest.fail(f"deepframes cluster start failed: {started.stderr.strip()}")
    return json.loads(started.stdout.strip().splitlines()[-1])


def stop_standalone(state_dir: Path) -> None:
    stopped = deepframes_command("cluster", "stop", "--state-dir", str(state_dir))
    assert stopped.returncode == 0, stopped.stderr


# One executor of 1 core and 1g per worker, as the workers offer.
STANDALONE_CONF = {"spark.executor.memory": "1g", "spark.executor.cores": "1", "spark.driver.memory": "2g"}


@pytest.fixture(scope="session")
def standalone_cluster(tmp_path_factory: pytest.TempPathFactory, spark_sessions):
    """A standalone master and 2 workers (1 core, 1g each) started by ``deepframes cluster start``;
    stopped (and checked gone) when the tests end, failed or not."""
    state_dir = tmp_path_factory.mktemp("standalone")
    info = start_standalone(state_dir)
    try:
        yield info
    finally:
        active = running_session()
        if active is not None and active.sparkContext.master == info["master_url"]:
            spark_sessions.stop()
        stop_standalone(state_dir)


@pytest.fixture
def standalone_spark(spark_sessions, standalone_cluster) -> SparkSession:
    """A session on the standalone cluster (two executors, one per worker)."""
    spark = spark_sessions.get(standalone_cluster["master_url"], **STANDALONE_CONF)
    wait_for_executors(spark, standalone_cluster["num_workers"])
    return spark


@dataclass(frozen=True)
class PrivateTmpCluster:
    """A standalone cluster whose workers see none of the driver's /tmp, and its shared storage."""

    info: dict  # what `deepframes cluster start --json` printed
    shared: Path  # a folder outside /tmp that the driver and every worker see (NFS, HDFS)


def _outside_tmp() -> Path:
    """A writable folder outside /tmp for the shared storage: /var/tmp, else the user's cache."""
    for candidate in (Path("/var/tmp"), Path.home() / ".cache" / "deepframes"):
        try:
            candidate.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        resolved = candidate.resolve()
        if Path("/tmp") not in resolved.parents and resolved != Path("/tmp") and os.access(resolved, os.W_OK):
            return resolved
    pytest.skip("No writable folder outside /tmp to play the cluster's shared storage.")


@pytest.fixture(scope="session")
def private_tmp_cluster(spark_sessions):
    """A standalone master and 2 workers (1 core, 1g each), each in a mount namespace of its own
    over a fresh /tmp with its home in there (``deepframes cluster start --private-tmp``): their
    executors see none of the driver's temporary files, as on other machines. ``shared`` is a
    folder outside /tmp that all see, as a cluster's NFS or HDFS. Skipped, saying why, where this
    machine cannot make mount namespaces; every process started is stopped at the end (failed or
    not) and checked gone, and the folders are removed."""
    from deepframes import standalone

    problem = standalone.private_tmp_problem()
    if problem is not None:
        pytest.skip(f"This machine cannot give workers a private /tmp: {problem}.")
    root = Path(tempfile.mkdtemp(prefix="deepframes-tests-shared-", dir=_outside_tmp()))
    state_dir = root / "cluster"
    try:
        info = start_standalone(state_dir, 2, "--private-tmp")
        namespaces = [process["mount_namespace"] for process in info["processes"] if process["mount_namespace"]]
        try:
            assert len(namespaces) == 2, info
            (root / "shared").mkdir()
            yield PrivateTmpCluster(info, root / "shared")
        finally:
            active = running_session()
            if active is not None and active.sparkContext.master == info["master_url"]:
                spark_sessions.stop()
            stop_standalone(state_dir)
            assert standalone.processes_left(str(state_dir), namespaces) == []
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def private_tmp_spark(spark_sessions, private_tmp_cluster) -> SparkSession:
    """A session on the private-/tmp cluster (two executors, one per worker); the driver is this
    process, with the machine's /tmp."""
    spark = spark_sessions.get(private_tmp_cluster.info["master_url"], **STANDALONE_CONF)
    wait_for_executors(spark, private_tmp_cluster.info["num_workers"])
    return spark


def wait_for_executors(spark: SparkSession, count: int, timeout: float = 90) -> None:
    """Wait until ``count`` executors have registered (a standalone session starts before them)."""
    import time

    deadline = time.monotonic() + timeout
    # The driver's block manager is listed too.
    while spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1 < count:
        if time.monotonic() > deadline:
            pytest.fail(f"{count} executors did not register within {timeout} s")
        time.sleep(0.25)


@pytest.fixture(scope="session")
def pets_images() -> Path:
    if not PETS_IMAGES.is_dir():
        pytest.fail(f"Test data missing: {PETS_IMAGES} (the shared pets images).")
    return PETS_IMAGES


def encode(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def gradient_rgb(height: int = 24, width: int = 32) -> np.ndarray:
    """A deterministic RGB test picture whose three channels all differ."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([rows * 10 % 256, cols * 8 % 256, (rows + cols) * 5 % 256], axis=-1).astype(np.uint8)


# File name -> (bytes maker, expected error text or None, expected channels).
def _bad_and_odd_files() -> dict[str, tuple[bytes, str | None, int | None]]:
    picture = Image.fromarray(gradient_rgb(60, 80))
    jpeg = encode(picture, "JPEG", quality=90)
    sixteen_bit = Image.fromarray((np.arange(20 * 30).reshape(20, 30) * 100).astype(np.uint16))
    palette = picture.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return {
        "empty.jpg": (b"", "empty file (0 bytes)", None),
        "text.jpg": (b"hello, I am text pretending to be a JPEG\n", "not an image", None),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated or corrupt JPEG data", None),
        "cmyk.jpg": (encode(picture.convert("CMYK"), "JPEG"), None, 3),
        "sixteen_bit.png": (encode(sixteen_bit, "PNG"), None, 1),
        "palette.gif": (encode(palette, "GIF"), None, 3),
        "good.png": (encode(picture, "PNG"), None, 3),
    }


BAD_FILE_ERRORS = {name: spec[1] for name, spec in _bad_and_odd_files().items()}
ODD_FILE_CHANNELS = {name: spec[2] for name, spec in _bad_and_odd_files().items() if spec[2]}


@pytest.fixture(scope="session")
def odd_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of broken files and unusual-but-valid ones, made by the tests themselves."""
    folder = tmp_path_factory.mktemp("odd_images")
    for name, (content, _, _) in _bad_and_odd_files().items():
        (folder / name).write_bytes(content)
    return folder


def assert_no_job(spark, action):
    """Run ``action`` and check that it started no Spark job (planning only); re-raises what
    ``action`` raises after the check."""
    import uuid

    context = spark.sparkContext
    group = f"deepframes-no-job-{uuid.uuid4().hex}"
    context.setJobGroup(group, "must start no job")
    try:
        return action()
    finally:
        context.setLocalProperty("spark.jobGroup.id", None)
        assert list(context.statusTracker().getJobIdsForGroup(group)) == [], "a Spark job ran"
