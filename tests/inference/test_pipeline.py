"""The pipeline interpreter: every classifier head gives MLlib's own answers, and any model stage
or fitted pipeline runs as a SQL function."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.errors import PythonException
from pyspark.ml import Pipeline
from pyspark.ml.classification import LinearSVC, LogisticRegression, MultilayerPerceptronClassifier
from pyspark.ml.feature import IndexToString, StringIndexer
from pyspark.sql import functions as F

import deepframes
from deepframes.inference.pipeline import PipelineFunction, compile_pipeline, pipeline_classifier
from tests.conftest import SHARED
from tests.inference.conftest import reference

SQUEEZENET = str(SHARED / "models" / "squeezenet1.1.onnx")


@pytest.fixture(scope="module")
def pet_files(spark_sessions, pets_images):
    from tests.conftest import LOCAL_MASTER

    spark = spark_sessions.get(LOCAL_MASTER)
    pattern = str(pets_images / "*_1[0-9].jpg")  # 30 photos of 3 breeds
    files = deepframes.read_images(pattern, decode=False, label="filename", spark=spark)
    featurizer = deepframes.ImageFeaturizer(inputCol="content", model="squeezenet1.1", weights=SQUEEZENET)
    return featurizer, featurizer.transform(files).cache()


CLASSIFIERS = {
    "logistic": lambda: LogisticRegression(labelCol="index", maxIter=50),
    "binary-logistic": lambda: LogisticRegression(labelCol="index", maxIter=50),
    "svm": lambda: LinearSVC(labelCol="index", maxIter=50),
    "mlp": lambda: MultilayerPerceptronClassifier(labelCol="index", layers=[512, 16, 3], maxIter=50, seed=1),
}


@pytest.mark.parametrize("kind", sorted(CLASSIFIERS))
def test_heads_give_mllib_answers(pet_files, kind):
    featurizer, features = pet_files
    if kind in ("svm", "binary-logistic"):  # binary classifiers
        features = features.where(F.col("label") != "american_bulldog")
    indexer = StringIndexer(inputCol="label", outputCol="index")
    fitted = Pipeline(stages=[indexer, CLASSIFIERS[kind]()]).fit(features)
    expected = fitted.transform(features).select("features", "prediction", "rawPrediction").collect()
    _, classifier = pipeline_classifier(type(fitted)(stages=[featurizer, *fitted.stages]))
    matrix = np.stack([row.features.toArray() for row in expected])
    scores = classifier.scores(matrix)
    assert scores.argmax(axis=1).tolist() == [int(row.prediction) for row in expected]
    if kind == "mlp":  # the softmax of MLlib's raw scores
        raw = np.stack([row.rawPrediction.toArray() for row in expected])
        np.testing.assert_allclose(scores, np.exp(raw) / np.exp(raw).sum(axis=1, keepdims=True), atol=1e-6)
    if kind == "svm":
        np.testing.assert_allclose(scores, np.stack([row.rawPrediction.toArray() for row in expected]), atol=1e-9)


def test_pipeline_sql_function_and_in_process_function_agree(spark, pet_files, pets_images):
    featurizer, features = pet_files
    files = deepframes.read_images(str(pets_images / "*_1[0-9].jpg"), decode=False, label="filename", spark=spark)
    indexer = StringIndexer(inputCol="label", outputCol="index").fit(files)
    fitted = Pipeline(stages=[featurizer, indexer,
                              MultilayerPerceptronClassifier(labelCol="index", layers=[512, 8, 3], maxIter=30, seed=2),
                              IndexToString(inputCol="prediction", outputCol="breed", labels=indexer.labels)]).fit(files)
    expected = {row.path: row.breed for row in fitted.transform(files).select("path", "breed").collect()}
    deepframes.register_udf(spark, "pet_breed", fitted)
    files.createOrReplaceTempView("pet_files")
    answered = {row.path: row.breed for row in spark.sql("SELECT path, pet_breed(content) AS breed FROM pet_files").collect()}
    assert answered == expected
    classify = PipelineFunction(fitted)
    photos = {path: open(path.removeprefix("file:"), "rb").read() for path in sorted(expected)[:6]}
    answers = classify(list(photos.values()) + [b"not a photo"], top=2)
    assert [answer.top[0][0] for answer in answers[:-1]] == [expected[path] for path in photos]
    assert answers[-1].top == [] and "not an image" in answers[-1].error


def test_any_model_transformer_is_a_sql_function(spark, toy_models):
    stage = deepframes.ModelTransformer(model=toy_models["onnx"], inputCols=["x"], outputCols=["y"])
    deepframes.register_udf(spark, "toy_dense", stage)
    deepframes.register_udf(spark, "toy_dense_doubled", stage, preprocessor=lambda batch: batch * 2)
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    spark.createDataFrame([(row.tolist(),) for row in x], "x array<float>").createOrReplaceTempView("toy")
    rows = spark.sql("SELECT x, toy_dense(x) AS y, toy_dense_doubled(x) AS y2 FROM toy").collect()
    inputs = np.array([row.x for row in rows], np.float32)
    np.testing.assert_allclose(np.array([row.y for row in rows]), reference(inputs), atol=1e-5)
    np.testing.assert_allclose(np.array([row.y2 for row in rows]), reference(inputs * 2), atol=1e-5)


def test_image_model_transformer_takes_images_in_sql(spark, pets_images):
    stage = deepframes.ModelTransformer(model=SQUEEZENET, inputCols=["image"], outputNames=["features"])
    deepframes.register_udf(spark, "squeeze", stage)
    deepframes.read_images(str(pets_images / "Bengal_1.jpg"), decode=False, spark=spark).createOrReplaceTempView("one_file")
    (row,) = spark.sql("SELECT squeeze(content) AS f FROM one_file").collect()
    assert len(row.f) == 512 and np.isfinite(row.f).all()


def test_register_udf_refuses_what_it_cannot_run(spark):
    from pyspark.ml.feature import VectorAssembler

    with pytest.raises(TypeError, match=r"Expected a ModelTransformer.*received VectorAssembler"):
        deepframes.register_udf(spark, "nope", VectorAssembler(inputCols=["a"], outputCol="v"))
    with pytest.raises(TypeError, match=r"preprocessor must be a function"):
        deepframes.register_udf(spark, "nope", deepframes.ImageFeaturizer(weights=SQUEEZENET), preprocessor=3)


def test_predictor_refuses_labels_that_do_not_cover_its_classes(spark, pets_images):
    predictor = deepframes.ImagePredictor(model="squeezenet1.1", weights=SQUEEZENET, labels=["cat", "dog"])
    images = deepframes.read_images(str(pets_images / "Bengal_1.jpg"), spark=spark)
    with pytest.raises(PythonException, match=r"scores 1000 classes but 2 labels were given"):
        predictor.transform(images).collect()
    assert compile_pipeline(predictor).top_k.labels == ("cat", "dog")
