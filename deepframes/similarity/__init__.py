"""Similarity search over feature vectors: exact nearest neighbours at Spark scale
(``nearest_neighbors``), and a saved index to search from Spark, SQL or one process
(``VectorIndex``)."""

from .index import VectorIndex, VectorIndexModel, register_index
from .neighbors import METRICS, nearest_neighbors

__all__ = ["METRICS", "VectorIndex", "VectorIndexModel", "nearest_neighbors", "register_index"]
