"""deepframes featurize: features, labels and paths in Parquet; bad folders exit 2 leaving nothing."""

from __future__ import annotations

import pytest

from deepframes.apps.featurize import load_features, read_featurizer
from tests.apps.fixtures import SQUEEZENET, fixture_result
from tests.apps.helpers import one_line_error, run_cli
from tests.conftest import LOCAL_MASTER

pytestmark = pytest.mark.slow


def test_featurize_writes_features_labels_and_paths(pets_features, spark_sessions):
    spark = spark_sessions.get(LOCAL_MASTER)
    features = load_features(pets_features, spark)
    assert features.matrix.shape == (600, 512)
    assert features.class_counts() == {"Abyssinian": 200, "Bengal": 200, "american_bulldog": 200}
    assert all(path.endswith(".jpg") for path in features.paths)
    assert read_featurizer(pets_features).model == "squeezenet1.1"
    assert fixture_result(pets_features)["num_failed"] == 0  # the GIF and the RGBA PNG named .jpg decode


def test_featurize_folder_without_images_exits_2_and_writes_nothing(spark, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here\n")
    out = tmp_path / "features"
    code, _, err = run_cli(capsys, "featurize", str(empty), "--weights", SQUEEZENET, "--out", str(out))
    assert code == 2
    message = one_line_error(err, "featurize")
    assert "found no image files" in message and message.endswith("Check the path.")  # no Python argument hint
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_featurize_without_weights_for_squeezenet_exits_2(spark, pets_images, tmp_path, capsys):
    code, _, err = run_cli(capsys, "featurize", str(pets_images), "--out", str(tmp_path / "f"))
    assert code == 2
    assert "needs its ONNX file" in one_line_error(err, "featurize")


def test_featurize_single_class_exits_2_and_writes_nothing(spark, pets_images, tmp_path, capsys):
    out = tmp_path / "features"
    code, _, err = run_cli(capsys, "featurize", str(pets_images / "Bengal_1?.jpg"), "--weights", SQUEEZENET,
                           "--out", str(out))
    assert code == 2 and "single class ('Bengal')" in one_line_error(err, "featurize")
    assert not out.exists()
