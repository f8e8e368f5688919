"""Long jobs: featurize and predict write as they go, continue after SIGKILL with --resume, and
keep going past bad rows (their reason in 'error'), up to --max-errors."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.apps.fixtures import SQUEEZENET
from tests.apps.helpers import last_json, one_line_error, run_cli
from tests.conftest import REPO_ROOT

SUBSET = "[AB]*_1*.jpg"  # 210 photos of two classes


def _features_by_path(folder: Path) -> dict[str, np.ndarray]:
    table = pq.read_table(folder, columns=["path", "features"])
    features = table.column("features").to_pylist()
    return {path: np.asarray(cell["values"], dtype=np.float32)
            for path, cell in zip(table.column("path").to_pylist(), features) if cell is not None}


def _paths(folder: Path) -> list[str]:
    return pq.read_table(folder, columns=["path"]).column("path").to_pylist()


def _parts(folder: Path) -> set[str]:
    return {path.name for path in folder.glob("part-*")} if folder.is_dir() else set()


def _featurize(images: str, out: Path, *extra: str) -> subprocess.Popen:
    # local[4]: four tasks, so a run commits its output in four steps. A run killed with SIGKILL
    # cannot remove its temporary files: they go to a folder of the test's (TMPDIR, which the
    # driver, its JVM and the Python workers all use).
    temporary = out.parent / "tmp"
    temporary.mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "deepframes.cli", "featurize", images, "--weights", SQUEEZENET, "--out", str(out),
         "--master", "local[4]", *extra], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, env={**os.environ, "TMPDIR": str(temporary)})


def _kill_at_random_moment(command: subprocess.Popen, out: Path, rng: random.Random) -> str:
    """SIGKILL the driver at a random moment: before its job, or just after a task committed."""
    parts = _parts(out)
    if rng.random() < 0.3:
        time.sleep(rng.uniform(1.0, 6.0))
        moment = "at random"
    else:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and command.poll() is None and _parts(out) == parts:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.8))
        moment = "after a commit"
    if command.poll() is not None:
        return "finished first"
    os.killpg(command.pid, signal.SIGKILL)  # the driver, its JVM and its Python workers, no clean-up
    command.wait()
    return moment


@pytest.mark.slow
def test_featurize_killed_again_and_again_then_resumed_gives_every_row_once(pets_images, pets_features, tmp_path):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    out = tmp_path / "features"
    images = str(pets_images / SUBSET)
    moments = []
    for _ in range(3):
        command = _featurize(images, out, *(["--resume"] if out.exists() else []))
        try:
            moments.append(_kill_at_random_moment(command, out, rng))
        finally:
            if command.poll() is None:
                os.killpg(command.pid, signal.SIGKILL)
                command.wait()
    context = f"seed {seed}, kills {moments}"
    assert moments.count("finished first") < len(moments), context
    # Without --resume the unfinished run is refused (before Spark starts), never replaced.
    if (out / "_deepframes.running").exists():
        refused = _featurize(images, out)
        _, err = refused.communicate(timeout=120)
        assert refused.returncode == 2 and "add --resume to continue it" in err, (context, err)
    finished = _featurize(images, out, "--resume", "--json")
    stdout, err = finished.communicate(timeout=300)
    assert finished.returncode == 0, (context, err)
    result = last_json(stdout)
    expected = sorted(str(path) for path in pets_images.glob(SUBSET))
    paths = _paths(out)
    assert sorted(paths) == [f"file:{path}" for path in expected], context  # each photo once
    assert result["num_images"] == len(expected) and result["num_failed"] == 0, (context, result)
    reference = _features_by_path(pets_features)  # an uninterrupted run over all 600 photos
    for path, features in _features_by_path(out).items():
        np.testing.assert_array_equal(features, reference[path], err_msg=context)
    assert not (out / "_deepframes.running").exists() and not (out / "_temporary").exists()


def test_resume_refuses_other_options_in_one_line(spark, pets_images, tmp_path, capsys):
    out = tmp_path / "features"
    images = str(pets_images / "[AB]*_1?.jpg")
    code, _, err = run_cli(capsys, "featurize", images, "--weights", SQUEEZENET, "--out", str(out))
    assert code == 0, err
    before = _parts(out)
    code, _, err = run_cli(capsys, "featurize", images, "--weights", SQUEEZENET, "--out", str(out), "--resume",
                           "--label", "none")
    assert code == 2 and "label was 'filename', now None" in one_line_error(err, "featurize")
    assert _parts(out) == before  # nothing written, nothing removed


def test_resume_of_a_finished_run_adds_only_new_photos(spark, pets_images, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in sorted(pets_images.glob("[AB]*_1?.jpg"))[:12]:
        shutil.copy(path, folder / path.name)
    out = tmp_path / "features"
    code, stdout, err = run_cli(capsys, "featurize", str(folder), "--weights", SQUEEZENET, "--out", str(out), "--json")
    assert code == 0 and last_json(stdout)["num_images"] == 12, err
    for path in sorted(pets_images.glob("[AB]*_1?.jpg"))[12:16]:
        shutil.copy(path, folder / path.name)
    code, stdout, err = run_cli(capsys, "featurize", str(folder), "--weights", SQUEEZENET, "--out", str(out),
                                "--resume", "--json")
    result = last_json(stdout)
    assert code == 0 and (result["num_images"], result["num_resumed"]) == (16, 12), err
    assert sorted(_paths(out)) == sorted(f"file:{path}" for path in folder.iterdir())


def _photos_with_bad_files(pets_images: Path, folder: Path, num_good: int, num_bad: int) -> Path:
    folder.mkdir()
    for path in sorted(pets_images.glob("[AB]*_1?.jpg"))[:num_good]:
        os.symlink(path, folder / path.name)
    for index in range(num_bad):  # what users' folders hold: a text file named .jpg, an empty file
        (folder / f"Bengal_99{index}.jpg").write_bytes(b"not a photo" if index % 2 else b"")
    return folder


def test_bad_files_are_rows_with_their_reason_and_max_errors_stops(spark, pets_images, tmp_path, capsys):
    photos = _photos_with_bad_files(pets_images, tmp_path / "photos", 12, 3)
    out = tmp_path / "features"
    code, stdout, err = run_cli(capsys, "featurize", str(photos), "--weights", SQUEEZENET, "--out", str(out), "--json")
    assert code == 0, err
    assert (last_json(stdout)["num_images"], last_json(stdout)["num_failed"]) == (12, 3)
    rows = pq.read_table(out, columns=["path", "features", "error"]).to_pylist()
    failed = {Path(row["path"]).name: row["error"] for row in rows if row["error"] is not None}
    assert sorted(failed) == ["Bengal_990.jpg", "Bengal_991.jpg", "Bengal_992.jpg"]
    assert all(reason for reason in failed.values()) and all(row["features"] is None for row in rows if row["error"])
    # Study and train read the features of the rows that have them.
    code, _, err = run_cli(capsys, "featurize", str(photos), "--weights", SQUEEZENET, "--out", str(tmp_path / "f2"),
                           "--max-errors", "1")
    message = one_line_error("\n".join(line for line in err.splitlines() if not line.startswith("featurizing:")),
                             "featurize")
    assert code == 1 and "3 rows failed, more than --max-errors 1" in message and "--resume" in message
    code, _, err = run_cli(capsys, "featurize", str(photos), "--weights", SQUEEZENET, "--out", str(tmp_path / "f3"),
                           "--max-errors", "-2")
    assert code == 2 and "--max-errors must be a number of rows" in one_line_error(err, "featurize")


def test_predict_to_a_folder_writes_one_row_per_photo_and_resumes(spark, pets_images, pets_model, tmp_path, capsys):
    photos = _photos_with_bad_files(pets_images, tmp_path / "photos", 8, 2)
    out = tmp_path / "predictions"
    code, stdout, err = run_cli(capsys, "predict", str(pets_model), str(photos), "--out", str(out), "--json")
    assert code == 0, err
    result = last_json(stdout)
    assert (result["num_photos"], result["num_failed"]) == (10, 2)
    rows = {Path(row["path"]).name: row for row in pq.read_table(out).to_pylist()}
    assert rows["Abyssinian_10.jpg"]["label"] == "Abyssinian" and rows["Abyssinian_10.jpg"]["error"] is None
    assert rows["Bengal_991.jpg"]["label"] is None and rows["Bengal_991.jpg"]["error"]
    (photos / "Bengal_10.jpg").symlink_to(pets_images / "Bengal_10.jpg") if not (photos / "Bengal_10.jpg").exists() else None
    code, stdout, err = run_cli(capsys, "predict", str(pets_model), str(photos), "--out", str(out), "--resume", "--json")
    result = last_json(stdout)
    assert code == 0 and result["num_resumed"] == 10 and result["num_photos"] == len(list(photos.iterdir())), err


def test_resume_over_a_hadoop_uri(spark, pets_images, tmp_path):
    """Photos and output on viewfs:// (Python's open cannot read it): a stopped run continues."""
    from deepframes.apps.featurize import featurize_images
    from deepframes.apps.resumable import RUNNING, TooManyFailures
    from tests.test_storage import mount

    root = mount(spark, tmp_path)
    photos = _photos_with_bad_files(pets_images, tmp_path / "photos", 16, 0)
    (photos / "Bengal_990.jpg").write_bytes(b"not a photo")
    with pytest.raises(TooManyFailures, match="1 rows failed, more than --max-errors 0"):
        featurize_images(f"{root}/photos", f"{root}/features", weights=SQUEEZENET, spark=spark, max_errors=0)
    assert (tmp_path / "features" / RUNNING).exists()
    (photos / "Bengal_990.jpg").unlink()  # the cause fixed; more photos arrived meanwhile
    for path in sorted(pets_images.glob("[AB]*_1?.jpg"))[16:20]:
        os.symlink(path, photos / path.name)
    result = featurize_images(f"{root}/photos", f"{root}/features", weights=SQUEEZENET, spark=spark, resume=True)
    assert (result.num_images, result.num_resumed, result.num_failed) == (20, 16, 1)  # the removed file's row stays
    paths = spark.read.parquet(f"{root}/features").where("features IS NOT NULL").select("path").collect()
    assert sorted(row.path for row in paths) == sorted(f"{root}/photos/{path.name}" for path in photos.iterdir())
    assert not (tmp_path / "features" / RUNNING).exists()
