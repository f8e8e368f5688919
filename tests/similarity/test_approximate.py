"""nearest_neighbors(method="ivf" | "hnsw"): recall@10 against NumPy's brute force, exact float64
distances for the pairs found, the self-join without self, one-line errors, the missing extra."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from deepframes.similarity import approximate, neighbors
from deepframes.similarity.neighbors import nearest_neighbors

needs_faiss = pytest.mark.skipif(importlib.util.find_spec("faiss") is None,
                                 reason="faiss is not installed: pip install 'deepframes[similarity]'")


def clustered(count: int, width: int = 24, clusters: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, width))
    return (centres[rng.integers(0, clusters, count)] + 0.4 * rng.normal(size=(count, width))).astype(np.float32)


def brute_force(queries: np.ndarray, items: np.ndarray, k: int, metric: str, exclude_self: bool) -> np.ndarray:
    """Row numbers of each query's k nearest items (float64), itself left out in a self-join."""
    found = neighbors.distances(queries.astype(np.float64), items.astype(np.float64), metric)
    if exclude_self:
        np.fill_diagonal(found, np.inf)
    return np.argsort(found, axis=1, kind="stable")[:, :k]


def _frame(spark, matrix: np.ndarray, first_id: int = 0):
    rows = [(first_id + number, row.tolist()) for number, row in enumerate(matrix)]
    return spark.createDataFrame(rows, "id long, features array<float>").repartition(2)


@needs_faiss
@pytest.mark.parametrize("method", ["ivf", "hnsw"])
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_approximate_self_join_recall_at_10_against_numpy(spark, monkeypatch, method, metric):
    # Several blocks, several lists or shards: the joins and the merge are exercised, not one pair.
    monkeypatch.setattr(neighbors, "BLOCK_ROWS", 300)
    monkeypatch.setattr(approximate, "SHARD_ROWS", 700)
    points = clustered(1500)
    found = nearest_neighbors(_frame(spark, points), k=10, metric=metric, method=method).toArrow()
    query_ids, item_ids = found.column("query_id").to_numpy(), found.column("item_id").to_numpy()
    truth = brute_force(points, points, 10, metric, exclude_self=True)
    hits = sum(len(set(item_ids[query_ids == query]) & set(truth[query])) for query in range(len(points)))
    assert hits / truth.size >= 0.95
    assert not np.any(query_ids == item_ids)  # never itself
    assert np.bincount(query_ids, minlength=len(points)).tolist() == [10] * len(points)
    ranks = found.column("rank").to_numpy()[np.lexsort((found.column("rank").to_numpy(), query_ids))]
    assert ranks.tolist() == list(range(1, 11)) * len(points)


@needs_faiss
@pytest.mark.parametrize("method", ["ivf", "hnsw"])
def test_approximate_distances_are_the_exact_float64_ones(spark, method):
    items, queries = clustered(1200, seed=1), clustered(40, seed=2)
    found = nearest_neighbors(_frame(spark, queries, first_id=10_000), _frame(spark, items), k=5, metric="euclidean",
                              method=method).toArrow()
    query_rows = found.column("query_id").to_numpy() - 10_000
    item_rows = found.column("item_id").to_numpy()
    difference = queries[query_rows].astype(np.float64) - items[item_rows].astype(np.float64)
    np.testing.assert_allclose(found.column("distance").to_numpy(), np.sqrt((difference ** 2).sum(1)), rtol=1e-12)
    exact = nearest_neighbors(_frame(spark, queries, first_id=10_000), _frame(spark, items), k=5, metric="euclidean")
    exact_pairs = {(row.query_id, row.item_id): row.distance for row in exact.collect()}
    shared = [(query + 10_000, item, distance) for query, item, distance in
              zip(query_rows, item_rows, found.column("distance").to_numpy()) if (query + 10_000, item) in exact_pairs]
    assert len(shared) >= 0.95 * len(exact_pairs)
    assert all(exact_pairs[(query, item)] == distance for query, item, distance in shared)  # the same numbers


@needs_faiss
def test_approximate_search_of_no_items_is_empty(spark):
    queries = _frame(spark, clustered(20))
    items = spark.createDataFrame([(1, None)], "id long, features array<float>")
    for method in ("ivf", "hnsw"):
        assert nearest_neighbors(queries, items, k=3, method=method).count() == 0


@needs_faiss
def test_tuning_parameters_are_one_line_errors(spark):
    df = spark.createDataFrame([(1, [1.0])], "id long, features array<double>")
    with pytest.raises(ValueError, match=r"The 'probes' parameter of nearest_neighbors must be a positive integer. Got 0 instead."):
        nearest_neighbors(df, method="ivf", probes=0)
    with pytest.raises(ValueError, match="The 'lists' parameter of nearest_neighbors must be a positive integer. Got '8' instead."):
        nearest_neighbors(df, method="ivf", lists="8")
    with pytest.raises(ValueError, match="The 'ef' parameter of nearest_neighbors tunes method='hnsw'. Got method='ivf'"):
        nearest_neighbors(df, method="ivf", ef=64)
    with pytest.raises(ValueError, match="The 'probes' parameter of nearest_neighbors tunes method='ivf'. Got method='exact'"):
        nearest_neighbors(df, probes=4)
    with pytest.raises(ValueError, match=r"'method' parameter of nearest_neighbors must be one of \['exact', 'ivf', 'hnsw'\]"):
        nearest_neighbors(df, method="annoy")


@pytest.mark.parametrize("method", ["ivf", "hnsw"])
def test_approximate_without_faiss_names_the_extra(spark, monkeypatch, method):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss raises ImportError
    df = spark.createDataFrame([(1, [1.0])], "id long, features array<double>")
    with pytest.raises(ImportError, match=rf"method='{method}' needs faiss: pip install 'deepframes\[similarity\]'$"):
        nearest_neighbors(df, method=method)
