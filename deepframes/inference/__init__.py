"""Batch inference on DataFrames: pyspark.ml stages that run models on every executor."""

from __future__ import annotations

from .images import ImageFeaturizer as ImageFeaturizer
from .images import ImagePredictor as ImagePredictor
from .sql import register_udf as register_udf
from .transformer import ModelTransformer as ModelTransformer

__all__ = ["ImageFeaturizer", "ImagePredictor", "ModelTransformer", "register_udf"]
