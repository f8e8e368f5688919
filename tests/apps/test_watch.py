"""Photos that keep arriving: the image stages on streaming DataFrames, and ``predict --watch``
predicting every photo exactly once across a Ctrl-C and a restart."""

from __future__ import annotations

import collections
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import pytest

import deepframes
from deepframes.apps.train import train_classifier
from tests.apps.helpers import one_line_error, run_cli
from tests.conftest import LOCAL_MASTER, REPO_ROOT, SHARED, deepframes_command

SQUEEZENET = str(SHARED / "models" / "squeezenet1.1.onnx")
SPARK_LOG_LINE = re.compile(r"\d\d/\d\d/\d\d \d\d:\d\d:\d\d (WARN|INFO|ERROR) ")
# Three waves of three photos: two while the first watch runs, one before the restart.
WAVES = [["Bengal_10.jpg", "Abyssinian_11.jpg", "Bengal_12.jpg"],
         ["Abyssinian_13.jpg", "Bengal_14.jpg", "Abyssinian_15.jpg"],
         ["Bengal_16.jpg", "Abyssinian_17.jpg", "Bengal_18.jpg"]]


@pytest.fixture(scope="module")
def small_model(spark_sessions, pets_images, tmp_path_factory):
    """A model folder trained on 20 photos of two breeds."""
    folder = tmp_path_factory.mktemp("watch-model") / "model"
    train_classifier(str(pets_images / "[AB]*_1?.jpg"), folder, weights=SQUEEZENET,
                     spark=spark_sessions.get(LOCAL_MASTER))
    return folder


def _drop(names, pets_images, inbox, staging):
    """Photos appear whole, as a user's move into the folder makes them."""
    staging.mkdir(exist_ok=True)
    for name in names:
        shutil.copyfile(pets_images / name, staging / name)
        os.replace(staging / name, inbox / name)


def _run_to_memory(frame, name: str, checkpoint) -> list:
    query = (frame.writeStream.format("memory").queryName(name).trigger(availableNow=True)
             .option("checkpointLocation", str(checkpoint)).start())
    query.awaitTermination()
    assert query.exception() is None
    return frame.sparkSession.table(name).collect()


def test_image_stages_transform_a_streaming_dataframe_as_a_static_one(spark, pets_images, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    _drop(WAVES[0], pets_images, inbox, tmp_path / "staging")
    featurizer = deepframes.ImageFeaturizer(weights=SQUEEZENET, batchSize=2)
    predictor = deepframes.ImagePredictor(weights=SQUEEZENET, topK=2, batchSize=2)

    stream = deepframes.stream_images(str(inbox), size=(224, 224), spark=spark)
    assert stream.isStreaming
    found = _run_to_memory(predictor.transform(featurizer.transform(stream)), f"watch_{uuid.uuid4().hex}",
                           tmp_path / "checkpoint")

    static = deepframes.read_images(str(inbox), size=(224, 224), spark=spark)
    expected = {row.path: row for row in predictor.transform(featurizer.transform(static)).collect()}
    assert sorted(row.path for row in found) == sorted(expected) and len(found) == 3
    for row in found:
        assert np.max(np.abs(row.features.toArray() - expected[row.path].features.toArray())) <= 1e-5
        assert [p.label for p in row.predictions] == [p.label for p in expected[row.path].predictions]


def test_predictions_frame_on_a_stream_of_encoded_photos_matches_predict(spark, small_model, pets_images, tmp_path):
    from deepframes.apps.predict import BreedPredictor
    from deepframes.apps.train import load_model
    from deepframes.apps.watch import predictions_frame

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    _drop(WAVES[1], pets_images, inbox, tmp_path / "staging")
    (inbox / "broken.jpg").write_bytes(b"not a photo")
    photos = deepframes.stream_images(str(inbox), decode=False, spark=spark)
    rows = _run_to_memory(predictions_frame(load_model(small_model), photos, top=2), f"watch_{uuid.uuid4().hex}",
                          tmp_path / "checkpoint")
    by_name = {row.path.rsplit("/", 1)[-1]: row for row in rows}
    assert sorted(by_name) == sorted([*WAVES[1], "broken.jpg"])
    assert by_name["broken.jpg"].label is None and by_name["broken.jpg"].predictions is None
    expected = BreedPredictor(small_model, spark).predict_paths([str(inbox / name) for name in WAVES[1]], top=2)
    for prediction in expected:
        row = by_name[prediction.path.rsplit("/", 1)[-1]]
        assert [(p.label, round(p.probability, 5)) for p in row.predictions] == \
            [(label, round(probability, 5)) for label, probability in prediction.top]
        assert (row.label, row.probability) == (row.predictions[0].label, row.predictions[0].probability)


def _lines(stream, into: queue.Queue) -> None:
    for line in stream:
        into.put(line.rstrip("\n"))


def _wait_for(lines: queue.Queue, seen: list[str], text: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in line for line in seen):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"{text!r} never appeared; the watch said: {seen[-20:]}")
        try:
            seen.append(lines.get(timeout=remaining))
        except queue.Empty:
            continue


def test_watch_stopped_and_restarted_predicts_every_photo_exactly_once(small_model, pets_images, tmp_path, spark):
    inbox, out, staging = tmp_path / "inbox", tmp_path / "out", tmp_path / "staging"
    inbox.mkdir()
    watch = subprocess.Popen(
        [sys.executable, "-m", "deepframes.cli", "predict", str(small_model), "--watch", str(inbox), "--out", str(out)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    seen: list[str] = []
    reader = threading.Thread(target=_lines, args=(watch.stderr, lines), daemon=True)
    reader.start()
    try:
        _wait_for(lines, seen, "Watching")
        _drop(WAVES[0], pets_images, inbox, staging)
        _wait_for(lines, seen, "3 predicted since start")
        _drop(WAVES[1], pets_images, inbox, staging)
        _wait_for(lines, seen, "6 predicted since start")
        watch.send_signal(signal.SIGINT)  # Ctrl-C
        assert watch.wait(timeout=120) == 130
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
    reader.join(timeout=10)
    while not lines.empty():
        seen.append(lines.get())
    # Ctrl-C: the query stops, and the command ends with one line (Spark's own log lines aside).
    ours = [line for line in seen if line.strip() and not SPARK_LOG_LINE.match(line)]
    assert ours[-1] == "deepframes predict: interrupted", seen[-10:]
    assert not any("Traceback" in line for line in seen), "\n".join(seen)

    _drop(WAVES[2], pets_images, inbox, staging)
    again = deepframes_command("predict", str(small_model), "--watch", str(inbox), "--out", str(out), "--once",
                               "--json", timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout.strip().splitlines()[-1])["num_photos"] == 3

    every_photo = sorted(name for wave in WAVES for name in wave)
    rows = spark.read.json(str(out)).collect()  # through the sink's log: committed batches only
    assert sorted(row.path.rsplit("/", 1)[-1] for row in rows) == every_photo
    for row in rows:
        assert row.label in ("Abyssinian", "Bengal") and len(row.predictions) == 2  # --top 3 of 2 classes
    # Stopped cleanly, no batch was left half-written: the files alone hold each photo once too.
    written = collections.Counter(
        json.loads(line)["path"].rsplit("/", 1)[-1]
        for part in out.glob("part-*") for line in part.read_text().splitlines())
    assert sorted(written.elements()) == every_photo


def test_watch_refuses_an_out_folder_it_did_not_write(capsys, small_model, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    code, _, err = run_cli(capsys, "predict", str(small_model), "--watch", str(tmp_path), "--out", str(taken))
    assert code == 2
    assert "is not the output of an earlier watch" in one_line_error(err, "predict")


def test_watch_needs_out_and_no_images(capsys, small_model, tmp_path):
    code, _, err = run_cli(capsys, "predict", str(small_model), "--watch", str(tmp_path))
    assert code == 2
    assert "--watch DIR and --out DIR go together" in one_line_error(err, "predict")
