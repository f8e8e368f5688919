"""Built once per test session and shared by tests/apps and tests/serve: pets features and a model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepframes.apps.featurize import featurize_images
from deepframes.apps.train import train_classifier
from tests.conftest import LOCAL_MASTER, SHARED

SQUEEZENET = str(SHARED / "models" / "squeezenet1.1.onnx")


def _once(tmp_path_factory: pytest.TempPathFactory, name: str, build) -> Path:
    """``build(folder)`` the first time any conftest asks for ``name`` in this session."""
    folder = tmp_path_factory.getbasetemp() / "shared-app-fixtures" / name
    done = folder.with_name(f"{name}.json")
    if not done.exists():
        result = build(folder)
        done.write_text(json.dumps(result.as_dict(), default=str))
    return folder


def pets_features(spark_sessions, pets_images: Path, tmp_path_factory) -> Path:
    spark = spark_sessions.get(LOCAL_MASTER)
    return _once(tmp_path_factory, "pets-features", lambda folder: featurize_images(
        str(pets_images), folder, weights=SQUEEZENET, label="filename", spark=spark))


def pets_model(spark_sessions, pets_images: Path, tmp_path_factory) -> Path:
    features = pets_features(spark_sessions, pets_images, tmp_path_factory)
    spark = spark_sessions.get(LOCAL_MASTER)
    return _once(tmp_path_factory, "pets-model", lambda folder: train_classifier(str(features), folder, spark=spark))


def fixture_result(folder: Path) -> dict:
    """The ``as_dict()`` of what built a shared fixture folder."""
    return json.loads(folder.with_name(f"{folder.name}.json").read_text())
