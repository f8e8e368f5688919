"""Near-duplicates: pairs of rows whose features are almost the same, and the groups they form.

A near-duplicate is the same photo saved twice, resized, recompressed or lightly cropped: its
features' cosine similarity to the original is far above that of two different photos of one
class. ``near_duplicates`` finds the pairs with the exact self-join of ``nearest_neighbors`` (each
row's ``k`` nearest, at Spark scale) and keeps those at or above a similarity ``threshold``;
``duplicate_groups`` joins pairs that share a row into groups (a photo saved three times is one
group of three), on the driver: pairs above a high threshold are few.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..core.params import check_value, real
from .neighbors import nearest_neighbors

DEFAULT_THRESHOLD = 0.95
# How many neighbours of each row are looked at: a group larger than this is still found whole
# (its rows reach each other through chains of pairs), unless every member's k nearest are
# all within the group.
_NEIGHBOURS = 10


def check_threshold(threshold: float) -> None:
    """The similarity threshold must lie in (0, 1].

    >>> check_threshold(1.5)
    Traceback (most recent call last):
    ...
    deepframes.core.params.InvalidParameterError: The 'threshold' parameter of near_duplicates must be a float in (0, 1]. Got 1.5 instead.
    """
    check_value("near_duplicates", "threshold", threshold, real(0, 1, closed="right"))


def near_duplicates(df: DataFrame, threshold: float = DEFAULT_THRESHOLD, *, featuresCol: str = "features",
                    idCol: str | None = None) -> DataFrame:
    """The pairs of rows of ``df`` whose features have a cosine similarity of at least ``threshold``:
    ``id_1, id_2, similarity`` with ``id_1 < id_2``, each pair once, most similar first.

    Parameters
    ----------
    df : DataFrame
        Rows with a vector or numeric array column ``featuresCol`` and a unique id column
        (``idCol``; by default ``path``, else ``id``).
    threshold : float
        In (0, 1]. Photos saved twice, resized or recompressed are above 0.95 with the features of
        an ImageNet network; two different photos of one breed rarely are.

    Examples
    --------
    >>> import deepframes
    >>> spark = deepframes.session("local[2]")
    >>> rows = spark.createDataFrame([(1, [1.0, 0.0]), (2, [0.99, 0.02]), (3, [0.0, 1.0])], "id int, features array<double>")
    >>> [(row.id_1, row.id_2, round(row.similarity, 4)) for row in near_duplicates(rows).collect()]
    [(1, 2, 0.9998)]
    """
    check_threshold(threshold)
    neighbours = nearest_neighbors(df, k=_NEIGHBOURS, featuresCol=featuresCol, idCol=idCol, metric="cosine")
    close = neighbours.where(F.col("distance") <= 1.0 - threshold)
    pairs = close.select(F.least("query_id", "item_id").alias("id_1"), F.greatest("query_id", "item_id").alias("id_2"),
                         (1.0 - F.col("distance")).alias("similarity"))
    return pairs.groupBy("id_1", "id_2").agg(F.max("similarity").alias("similarity")) \
        .orderBy(F.desc("similarity"), "id_1", "id_2")


def duplicate_groups(pairs: Iterable[tuple[Hashable, Hashable]]) -> list[list]:
    """Rows joined by pairs into groups (connected components), each sorted, largest group first.

    >>> duplicate_groups([("b", "c"), ("a", "b"), ("x", "y")])
    [['a', 'b', 'c'], ['x', 'y']]
    """
    parent: dict = {}

    def root(node):
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for first, second in pairs:
        parent[root(first)] = root(second)
    groups: dict = {}
    for node in list(parent):
        groups.setdefault(root(node), []).append(node)
    return sorted((sorted(group) for group in groups.values()), key=lambda group: (-len(group), group[0]))


__all__ = ["DEFAULT_THRESHOLD", "check_threshold", "duplicate_groups", "near_duplicates"]
