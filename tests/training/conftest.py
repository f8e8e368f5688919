"""Fixtures of the training tests: the pets' SqueezeNet features with indexed labels, split 70/30."""

from __future__ import annotations

import pytest
from pyspark.ml.feature import StringIndexer

from tests.apps import fixtures


@pytest.fixture(scope="session")
def pets_features_folder(spark_sessions, pets_images, tmp_path_factory):
    """The 600 pets featurized once per session (shared with the application tests)."""
    return fixtures.pets_features(spark_sessions, pets_images, tmp_path_factory)


@pytest.fixture
def pets_split(spark, pets_features_folder):
    """(train, test): 512 features and a label index 0-2, a seeded 70/30 split, cached."""
    frame = spark.read.parquet(str(pets_features_folder)).withColumnRenamed("label", "breed")
    indexed = StringIndexer(inputCol="breed", outputCol="label", stringOrderType="alphabetAsc").fit(frame)
    frame = indexed.transform(frame).select("features", "label")
    train, test = frame.randomSplit([0.7, 0.3], seed=7)
    return train.cache(), test.cache()


def accuracy(fitted, test) -> float:
    scored = fitted.transform(test)
    return scored.where("prediction = label").count() / scored.count()
