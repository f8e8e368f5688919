"""Batch inference on DataFrames: pyspark.ml stages that run models on every executor."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes

_EXPORTS = {
    "ImageFeaturizer": ".images",
    "ImagePredictor": ".images",
    "ModelTransformer": ".transformer",
    "NoveltyDetector": ".novelty_stage",
    "TextEmbedder": ".text",
    "register_udf": ".sql",
}

__all__ = ["ImageFeaturizer", "ImagePredictor", "ModelTransformer", "NoveltyDetector", "TextEmbedder", "register_udf"]

if TYPE_CHECKING:
    from .images import ImageFeaturizer as ImageFeaturizer
    from .images import ImagePredictor as ImagePredictor
    from .sql import register_udf as register_udf
    from .novelty_stage import NoveltyDetector as NoveltyDetector
    from .text import TextEmbedder as TextEmbedder
    from .transformer import ModelTransformer as ModelTransformer

# Imported on first use: zoo builds on model_spec and preprocess, and the stages build on zoo.
__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
