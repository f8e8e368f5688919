"""The training photos kept beside a model: found again by predict, also when the photos are gone."""

from __future__ import annotations

import os

import pyarrow.parquet as pq
import pytest

from deepframes.apps.featurize import featurize_images
from deepframes.apps.predict import BreedPredictor, format_predictions
from deepframes.apps.train import train_classifier
from tests.apps.fixtures import SQUEEZENET
from tests.conftest import PETS_IMAGES

pytestmark = pytest.mark.slow


def test_model_trained_on_features_whose_photos_are_gone_keeps_similar_photos_without_thumbnails(spark, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in [f"{breed}_{number}.jpg" for breed in ("Abyssinian", "Bengal") for number in range(150, 160)]:
        os.symlink(PETS_IMAGES / name, photos / name)
    featurize_images(str(photos), tmp_path / "features", weights=SQUEEZENET, spark=spark)
    for link in photos.iterdir():  # features copied from another machine: their photos are not here
        link.unlink()
    train_classifier(str(tmp_path / "features"), tmp_path / "model", spark=spark)
    kept = pq.read_table(tmp_path / "model" / "similar" / "photos.parquet").to_pylist()
    assert len(kept) == 16 and all(row["thumbnail"] is None for row in kept)

    (prediction,) = BreedPredictor(tmp_path / "model", None).predict_paths([str(PETS_IMAGES / "Bengal_155.jpg")])
    nearest = prediction.similar[0]
    if "Bengal_155.jpg" in {os.path.basename(row["path"]) for row in kept}:  # in the training split: itself
        assert nearest.name == "Bengal_155.jpg" and nearest.distance < 1e-5
    assert len(prediction.similar) == 3 and nearest.label == "Bengal" and nearest.thumbnail is None
    assert "(like " in format_predictions([prediction])
