"""nearest_neighbors: the answer of a float64 brute force, ties broken by id, nulls left out."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.ml.linalg import Vectors

from deepframes.similarity import neighbors
from deepframes.similarity.neighbors import nearest_neighbors


def brute_force(queries: np.ndarray, query_ids: list, items: np.ndarray, item_ids: list, k: int, metric: str,
                exclude_self: bool = False) -> list[tuple]:
    """``(query_id, item_id, rank)`` of a float64 brute force, ties broken by id."""
    found = []
    for row, query_id in enumerate(query_ids):
        if metric == "cosine":
            unit = lambda m: m / np.where(np.linalg.norm(m, axis=-1, keepdims=True) == 0, 1, np.linalg.norm(m, axis=-1, keepdims=True))
            distance = 1.0 - unit(items.astype(np.float64)) @ unit(queries[row].astype(np.float64))
        else:
            distance = np.sqrt(((items.astype(np.float64) - queries[row].astype(np.float64)) ** 2).sum(1))
        ranked = sorted((float(d), item_id) for d, item_id in zip(distance, item_ids)
                        if not (exclude_self and item_id == query_id))
        found += [(query_id, item_id, rank + 1) for rank, (_, item_id) in enumerate(ranked[:k])]
    return found


def _frame(spark, ids, matrix, vectors=False, nulls=()):
    rows = [(item_id, None if item_id in nulls else (Vectors.dense(row) if vectors else [float(x) for x in row]))
            for item_id, row in zip(ids, matrix)]
    return spark.createDataFrame(rows, f"id {'string' if isinstance(ids[0], str) else 'long'}, "
                                       f"features {'vector' if vectors else 'array<double>'}") if not vectors else \
        spark.createDataFrame(rows, ["id", "features"])


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_exact_neighbours_equal_numpy_brute_force_across_blocks(spark, monkeypatch, metric):
    monkeypatch.setattr(neighbors, "BLOCK_ROWS", 16)  # several blocks on each side, several per partition
    rng = np.random.default_rng(7)
    items = rng.normal(size=(90, 8)).astype(np.float32)  # vectors are held as float32
    queries = rng.normal(size=(37, 8)).astype(np.float32)
    item_ids, query_ids = list(range(1000, 1090)), list(range(37))
    found = nearest_neighbors(_frame(spark, query_ids, queries).repartition(3),
                              _frame(spark, item_ids, items).repartition(4), k=5, metric=metric)
    rows = sorted((row.query_id, row.item_id, row.rank) for row in found.collect())
    assert rows == sorted(brute_force(queries, query_ids, items, item_ids, 5, metric))
    distances = {(row.query_id, row.item_id): row.distance for row in found.collect()}
    np.testing.assert_allclose(distances[(0, rows[0][1])],
                               neighbors.pair_distances(queries[:1], items[rows[0][1] - 1000:rows[0][1] - 999], metric),
                               rtol=1e-12)


def test_ties_are_broken_by_id_and_null_rows_are_left_out(spark, monkeypatch):
    monkeypatch.setattr(neighbors, "BLOCK_ROWS", 4)
    base = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    items = np.repeat(base, 4, axis=0)  # every vector four times: distances tie exactly
    ids = [f"item-{index:02d}" for index in range(len(items))][::-1]  # ids not in row order
    found = nearest_neighbors(_frame(spark, ["q"], np.array([[1.0, 0.1, 0.0]]), vectors=True),
                              _frame(spark, ids, items, nulls={"item-11"}, vectors=True).repartition(3), k=3,
                              idCol="id")
    ranked = [row.item_id for row in found.orderBy("rank").collect()]
    assert ranked == ["item-08", "item-09", "item-10"]  # item-11, the fourth twin, is null


def test_self_join_excludes_each_row_itself(spark, monkeypatch):
    monkeypatch.setattr(neighbors, "BLOCK_ROWS", 8)
    rng = np.random.default_rng(3)
    points = rng.normal(size=(40, 5))
    points[10] = points[20] * 2.0  # a near-duplicate pair (same direction)
    ids = list(range(40))
    found = nearest_neighbors(_frame(spark, ids, points).repartition(3), k=3)
    rows = sorted((row.query_id, row.item_id, row.rank) for row in found.collect())
    assert rows == sorted(brute_force(points, ids, points, ids, 3, "cosine", exclude_self=True))
    assert (10, 20, 1) in rows and (20, 10, 1) in rows


def test_bad_arguments_are_one_clear_error(spark):
    df = spark.createDataFrame([(1, [1.0])], "id long, features array<double>")
    with pytest.raises(ValueError, match=r"'metric' parameter of nearest_neighbors must be one of \['cosine', 'euclidean'\]. Got 'manhattan'"):
        nearest_neighbors(df, metric="manhattan")
    with pytest.raises(ValueError, match="'k' parameter of nearest_neighbors must be a positive integer. Got 0"):
        nearest_neighbors(df, k=0)
    with pytest.raises(ValueError, match="no 'path' or 'id' column"):
        nearest_neighbors(df.withColumnRenamed("id", "key"))
    with pytest.raises(TypeError, match="must be an ML vector or a numeric array; it is string"):
        nearest_neighbors(spark.createDataFrame([(1, "x")], "id long, features string"))
