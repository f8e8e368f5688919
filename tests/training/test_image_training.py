"""A KerasEstimator trains a small CNN end to end on the pet photos: the encoded files go in,
each rank decodes and resizes them to the model's 64x64 input."""

from __future__ import annotations

import pytest
from pyspark.ml.feature import StringIndexer

import deepframes
from tests.training.conftest import accuracy
from tests.training.workloads import pets_cnn, pets_torch_cnn


@pytest.mark.slow
def test_keras_cnn_on_pet_photos_beats_chance(spark, pets_images):
    photos = deepframes.read_images(str(pets_images), label="filename", decode=False, spark=spark)
    photos = StringIndexer(inputCol="label", outputCol="breed", stringOrderType="alphabetAsc").fit(photos) \
        .transform(photos).drop("label").withColumnRenamed("breed", "label")
    image = next(name for name in photos.columns if name not in ("path", "label"))
    train, test = photos.randomSplit([0.8, 0.2], seed=3)
    fitted = deepframes.KerasEstimator(model=pets_cnn, featuresCol=image, epochs=20, batchSize=32,
                                       learningRate=0.002).fit(train)
    assert fitted.history_["loss"][-1] < fitted.history_["loss"][0]
    # Chance is 1/3; measured 0.458 on the 118 held-out photos (seeded). 0.42 is 2 standard
    # deviations of a guesser's score above chance.
    assert accuracy(fitted, test) > 0.42


def _few_photos(spark, pets_images, decode: bool):
    """The photos numbered 10-19 of each breed (29 files), labelled 0-2; the image column's name."""
    photos = deepframes.read_images(f"{pets_images}/*_1[0-9].jpg", label="filename", decode=decode, spark=spark)
    photos = StringIndexer(inputCol="label", outputCol="breed", stringOrderType="alphabetAsc").fit(photos) \
        .transform(photos).drop("label").withColumnRenamed("breed", "label")
    return photos, next(name for name in photos.columns if name not in ("path", "label", "error"))


@pytest.mark.slow
@pytest.mark.parametrize("decode", [True, False], ids=["image-struct", "encoded-files"])
def test_torch_estimator_trains_on_an_image_column(spark, pets_images, decode):
    photos, image = _few_photos(spark, pets_images, decode)
    fitted = deepframes.TorchEstimator(model=pets_torch_cnn, featuresCol=image, inputShape=[3, 32, 32],
                                       epochs=3, batchSize=10, learningRate=0.01).fit(photos)
    assert fitted.getOrDefault(fitted.model).endswith(".pt2")  # records its 32x32 input
    assert len(fitted.history_["loss"]) == 3
    scored = fitted.transform(photos).select("label", "prediction", "probability").collect()
    assert len(scored) == photos.count() and {row.prediction for row in scored} <= {0.0, 1.0, 2.0}
    assert all(abs(sum(row.probability) - 1) < 1e-4 for row in scored)


def test_torch_estimator_on_images_needs_an_input_shape(spark, pets_images):
    photos, image = _few_photos(spark, pets_images, decode=False)
    with pytest.raises(ValueError, match="holds images.*received no inputShape.*inputShape=\\[3, H, W\\]"):
        deepframes.TorchEstimator(model=pets_torch_cnn, featuresCol=image).fit(photos)
