"""The path a user walks: pets -> SqueezeNet features -> logistic regression, saved, loaded, SQL."""

from __future__ import annotations

import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml.feature import StringIndexer

import deepframes
from deepframes.models.zoo import read_labels
from tests.conftest import LOCAL_MASTER, SHARED

SQUEEZENET = str(SHARED / "models" / "squeezenet1.1.onnx")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fitted(spark_sessions, pets_images, tmp_path_factory):
    spark = spark_sessions.get(LOCAL_MASTER)
    images = deepframes.read_images(str(pets_images), label="filename", size=(224, 224), spark=spark)
    train, test = images.randomSplit([0.7, 0.3], seed=42)
    pipeline = Pipeline(stages=[
        deepframes.ImageFeaturizer(model="squeezenet1.1", weights=SQUEEZENET, batchSize=32),
        StringIndexer(inputCol="label", outputCol="label_index"),
        LogisticRegression(featuresCol="features", labelCol="label_index", maxIter=100, regParam=0.01),
    ])
    model = pipeline.fit(train.cache())
    predictions = model.transform(test.cache()).cache()
    accuracy = MulticlassClassificationEvaluator(
        labelCol="label_index", predictionCol="prediction", metricName="accuracy"
    ).evaluate(predictions)
    predicted = {row.path: row.prediction for row in predictions.select("path", "prediction").collect()}
    folder = tmp_path_factory.mktemp("pets_model") / "pipeline"
    model.write().overwrite().save(str(folder))
    return model, accuracy, predicted, folder


def test_transfer_learning_scores_at_least_90_percent(fitted):
    _, accuracy, predicted, _ = fitted
    assert 150 < len(predicted) < 210  # the seeded 30% of 600
    assert accuracy >= 0.90, accuracy


def test_saved_pipeline_loads_in_a_new_session_and_predicts_the_same(fitted, spark_sessions, pets_images):
    _, _, expected, folder = fitted
    spark_sessions.get(LOCAL_MASTER).stop()  # a new session, as on another machine
    spark = spark_sessions.get(LOCAL_MASTER)
    loaded = PipelineModel.load(str(folder))
    featurizer = loaded.stages[0]
    assert featurizer.getOrDefault("weights").startswith(str(folder))  # the model file travelled
    images = deepframes.read_images(str(pets_images), label="filename", size=(224, 224), spark=spark)
    again = loaded.transform(images.where(images.path.isin(list(expected))))
    assert {row.path: row.prediction for row in again.select("path", "prediction").collect()} == expected


def test_register_udf_answers_sql_with_breed_names(fitted, spark_sessions, pets_images):
    model, _, predicted, _ = fitted
    spark = spark_sessions.get(LOCAL_MASTER)
    deepframes.register_udf(spark, "breed", model)
    labels = model.stages[1].labels
    expected = {path: labels[int(prediction)] for path, prediction in predicted.items()}
    # The encoded files, decoded inside the UDF's batches, give the pipeline's answers exactly.
    deepframes.read_images(str(pets_images), decode=False, spark=spark).createOrReplaceTempView("pets")
    answered = {row.path: row.breed for row in spark.sql("SELECT path, breed(content) AS breed FROM pets").collect()}
    assert set(answered.values()) == {"Abyssinian", "Bengal", "american_bulldog"}
    agreeing = sum(answered[path] == label for path, label in expected.items())
    assert agreeing == len(expected)  # SQL gives exactly the pipeline's predictions
    # and so do image structs from read_images
    some = sorted(expected)[:24]
    structs = deepframes.read_images(str(pets_images), size=(224, 224), spark=spark)
    structs.where(structs.path.isin(some)).createOrReplaceTempView("some_pets")
    rows = spark.sql("SELECT path, breed(image) AS breed FROM some_pets").collect()
    assert {row.path: row.breed for row in rows} == {path: expected[path] for path in some}


def test_image_predictor_knows_cats_from_dogs(spark, pets_images):
    images = deepframes.read_images(str(pets_images), label="filename", decode=False, spark=spark)
    predictor = deepframes.ImagePredictor(inputCol="content", model="squeezenet1.1", weights=SQUEEZENET, topK=1)
    top = predictor.transform(images).select("label", "predictions").collect()
    # ImageNet classes 281-285 are domestic cats, 151-268 dog breeds.
    labels = read_labels(str(SHARED / "models" / "imagenet_labels.txt"))
    cats, dogs = set(labels[281:286]), set(labels[151:269])
    for breed, kind in (("Abyssinian", cats), ("Bengal", cats), ("american_bulldog", dogs)):
        rows = [row.predictions[0].label for row in top if row.label == breed]
        share = sum(label in kind for label in rows) / len(rows)
        assert share >= 0.6, (breed, share)
