"""Fixtures of the web service tests: the same pets features and model as tests/apps, built once."""

from __future__ import annotations

from tests.apps.conftest import pets_features, pets_model

__all__ = ["pets_features", "pets_model"]
