"""Similarity search over feature vectors: nearest neighbours at Spark scale."""

from .neighbors import METRICS, nearest_neighbors

__all__ = ["METRICS", "nearest_neighbors"]
