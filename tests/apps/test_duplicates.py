"""Near-duplicate photos: ``deepframes duplicates`` and the study's report, on a collection with
planted copies (resized, recompressed, and one filed under another class)."""

from __future__ import annotations

import csv
import os
import shutil

import pytest
from PIL import Image

from deepframes.apps.duplicates import find_duplicate_photos
from deepframes.apps.featurize import featurize_images
from deepframes.apps.study import run_study
from deepframes.similarity.duplicates import duplicate_groups
from tests.apps.fixtures import SQUEEZENET
from tests.apps.helpers import last_json, one_line_error, run_cli
from tests.conftest import PETS_IMAGES

pytestmark = pytest.mark.slow

# No two of these photos are near-duplicates (the pets' own duplicates are elsewhere).
ORIGINALS = [f"{breed}_{number}.jpg" for breed in ("Abyssinian", "Bengal") for number in range(130, 145)]


def _plant(folder, original: str, name: str, change) -> tuple[str, str]:
    with Image.open(PETS_IMAGES / original) as image:
        changed, options = change(image.convert("RGB"))
    changed.save(folder / name, "JPEG", **options)
    return f"file:{folder / original}", f"file:{folder / name}"


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A folder of 30 pets and 4 near-duplicates of some of them; the planted pairs."""
    folder = tmp_path_factory.mktemp("planted")
    for name in ORIGINALS:
        os.symlink(PETS_IMAGES / name, folder / name)
    pairs = [
        _plant(folder, "Abyssinian_131.jpg", "Abyssinian_900.jpg",
               lambda image: (image.resize((image.width // 2, image.height // 2)), {"quality": 90})),
        _plant(folder, "Abyssinian_140.jpg", "Abyssinian_901.jpg", lambda image: (image, {"quality": 35})),
        _plant(folder, "Bengal_133.jpg", "Bengal_900.jpg", lambda image: (image, {"quality": 50})),
        # a Bengal filed as an Abyssinian: a labelling question, reported as such
        _plant(folder, "Bengal_142.jpg", "Abyssinian_902.jpg",
               lambda image: (image.resize((image.width * 3 // 4, image.height * 3 // 4)), {"quality": 85})),
    ]
    return folder, sorted(tuple(sorted(pair)) for pair in pairs)


@pytest.fixture(scope="module")
def planted_features(planted, spark_sessions, tmp_path_factory):
    from tests.conftest import LOCAL_MASTER

    out = tmp_path_factory.mktemp("planted-features") / "features"
    featurize_images(str(planted[0]), out, weights=SQUEEZENET, spark=spark_sessions.get(LOCAL_MASTER))
    return out


def test_find_duplicate_photos_finds_exactly_the_planted_copies(planted, spark):
    folder, pairs = planted
    result = find_duplicate_photos(str(folder), weights=SQUEEZENET, spark=spark)
    assert result.num_photos == 34
    assert sorted((pair.path_1, pair.path_2) for pair in result.pairs) == pairs
    assert result.groups == duplicate_groups(pairs)
    assert all(pair.similarity >= 0.95 for pair in result.pairs)


def test_duplicates_command_lists_groups_and_writes_a_report_with_thumbnails(planted_features, planted, tmp_path,
                                                                             capsys):
    out = tmp_path / "report"
    code, printed, _ = run_cli(capsys, "duplicates", str(planted_features), "--out", str(out), "--json")
    assert code == 0
    answer = last_json(printed)
    assert answer["num_photos"] == 34 and answer["num_groups"] == 4 and answer["num_duplicates"] == 4
    assert sorted(tuple(group) for group in answer["groups"]) == planted[1]
    report = (out / "report.md").read_text()
    assert report.count("![") == 8 and "1 of them with different labels" in report
    assert sorted(os.listdir(out / "duplicates")) == [f"{n:04d}-{side}.jpg" for n in range(1, 5) for side in (1, 2)]
    with Image.open(out / "duplicates" / "0001-1.jpg") as thumbnail:
        assert max(thumbnail.size) == 128


def test_duplicates_command_says_so_when_there_are_none(tmp_path, capsys):
    for name in ORIGINALS[:6]:
        shutil.copy(PETS_IMAGES / name, tmp_path / name)
    code, printed, _ = run_cli(capsys, "duplicates", str(tmp_path), "--weights", SQUEEZENET)
    assert code == 0 and "No near-duplicates among 6 photos" in printed


@pytest.mark.parametrize("arguments, expected", [
    (["--threshold", "1.5"], "--duplicates-threshold must be a cosine similarity in (0, 1]"),
    (["--weights", "missing.onnx"], "Weights file not found: missing.onnx"),
])
def test_duplicates_command_refuses_bad_input_in_one_line(arguments, expected, capsys):
    code, _, err = run_cli(capsys, "duplicates", str(PETS_IMAGES), *arguments)
    assert code == 2 and expected in one_line_error(err, "duplicates")


def test_study_reports_planted_duplicates_and_drops_them(planted_features, planted, spark, tmp_path):
    kept = run_study(planted_features, tmp_path / "kept", splits=(0.5,), spark=spark)
    assert sorted((pair["path_1"], pair["path_2"]) for pair in kept.duplicates) == planted[1]
    assert kept.num_dropped == 0
    with open(tmp_path / "kept" / "duplicates.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and sum(row["label_1"] != row["label_2"] for row in rows) == 1
    assert "--drop-duplicates" in (tmp_path / "kept" / "report.md").read_text()

    dropped = run_study(planted_features, tmp_path / "dropped", splits=(0.5,), drop_duplicates=True, spark=spark)
    assert dropped.num_dropped == 4
    with open(tmp_path / "dropped" / "results.csv", newline="") as handle:
        (training,) = list(csv.DictReader(handle))
    assert int(training["n_train"]) + int(training["n_test"]) == 34 - 4
    assert "4 photos left out before training" in (tmp_path / "dropped" / "report.md").read_text()
