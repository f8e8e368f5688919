"""Similarity search over feature vectors: exact nearest neighbours at Spark scale
(``nearest_neighbors``), and a saved index to search from Spark, SQL or one process
(``VectorIndex``), and near-duplicates (``near_duplicates``)."""

from .duplicates import duplicate_groups, near_duplicates
from .index import VectorIndex, VectorIndexModel, register_index
from .neighbors import METRICS, nearest_neighbors

__all__ = ["METRICS", "VectorIndex", "VectorIndexModel", "duplicate_groups", "near_duplicates", "nearest_neighbors",
           "register_index"]
