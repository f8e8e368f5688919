"""Fixtures of the application tests: the 600 pets featurized once, a model trained on them."""

from __future__ import annotations

import pytest

from tests.apps import fixtures


@pytest.fixture(scope="session")
def pets_features(spark_sessions, pets_images, tmp_path_factory):
    """The pets' SqueezeNet features (Parquet), written by featurize_images once per session."""
    return fixtures.pets_features(spark_sessions, pets_images, tmp_path_factory)


@pytest.fixture(scope="session")
def pets_model(spark_sessions, pets_images, tmp_path_factory):
    """A logistic regression model folder trained on the pets features (includes the featurizer)."""
    return fixtures.pets_model(spark_sessions, pets_images, tmp_path_factory)
