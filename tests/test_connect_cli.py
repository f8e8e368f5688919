"""The breed commands through Spark Connect (``DEEPFRAMES_REMOTE``, a local Connect server from the
pip package): featurize, train, predict, study and predict --watch give what they give locally."""

from __future__ import annotations

import pytest

from tests.conftest import script_results

pytest.importorskip("grpc_status", reason="Spark Connect needs pyspark[connect] (grpcio-status)")
pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def commands(tmp_path_factory) -> dict:
    return script_results("tests.connect_cli_checks", tmp_path_factory.mktemp("connect-cli"), timeout=1200)


def _ok(commands: dict, name: str) -> dict:
    result = commands[name]
    assert result["code"] == 0, result["stderr"]
    return result["json"]


def test_the_commands_ran_on_a_connect_session(commands):
    assert commands["session_type"].startswith("pyspark.sql.connect")


def test_featurize_and_train_over_connect(commands):
    featurized = _ok(commands, "featurize")
    assert featurized["num_images"] == 20 and featurized["num_features"] == 512
    assert featurized["class_counts"] == {"Abyssinian": 10, "Bengal": 10}
    trained = _ok(commands, "train")
    assert trained["labels"] == ["Abyssinian", "Bengal"] and trained["num_test"] == 4


def test_predict_over_connect(commands):
    predictions = {p["path"].rsplit("/", 1)[-1]: p for p in _ok(commands, "predict")["predictions"]}
    assert sorted(predictions) == ["Abyssinian_10.jpg", "Bengal_10.jpg"]
    for name, prediction in predictions.items():
        assert prediction["error"] is None and len(prediction["predictions"]) == 2
        assert prediction["predictions"][0]["label"] == name.rsplit("_", 1)[0]  # photos it was trained on


def test_study_over_connect(commands):
    study = _ok(commands, "study")
    assert study["num_pairs"] == 1 and study["num_trainings"] == 2
    assert {"report.md", "results.csv", "plots", "models"} <= set(commands["study_files"])


def test_predict_watch_over_connect(commands):
    assert _ok(commands, "watch")["num_photos"] == 1
