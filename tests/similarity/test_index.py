"""VectorIndex: fitted from a DataFrame, saved to a Hadoop URI, searched in-process, by transform
and by the SQL function, with the answers of nearest_neighbors."""

from __future__ import annotations

import numpy as np
import pytest

import deepframes
from deepframes.similarity import VectorIndex, VectorIndexModel, nearest_neighbors, register_index


def _collection(spark, count=60, width=6, seed=5):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(count, width)).astype(np.float32)
    rows = [(f"photo-{index:03d}.jpg", [float(x) for x in vector]) for index, vector in enumerate(vectors)]
    return spark.createDataFrame(rows, "path string, features array<double>").repartition(3), vectors


def test_search_transform_and_sql_agree_with_nearest_neighbors(spark, tmp_path):
    from tests.test_storage import mount

    items, vectors = _collection(spark)
    queries, _ = _collection(spark, count=7, seed=9)
    index = VectorIndex(k=4).fit(items)
    expected = {}
    for row in nearest_neighbors(queries, items, k=4).collect():
        expected.setdefault(row.query_id, []).append((row.rank, row.item_id, row.distance))
    expected = {query: [(item, distance) for _, item, distance in sorted(found)] for query, found in expected.items()}

    transformed = {row.path: [(cell.id, cell.distance) for cell in row.neighbors] for row in index.transform(queries).collect()}
    assert {query: [item for item, _ in found] for query, found in transformed.items()} == \
        {query: [item for item, _ in found] for query, found in expected.items()}
    for query, found in transformed.items():
        np.testing.assert_allclose([d for _, d in found], [d for _, d in expected[query]], rtol=1e-12)

    query_rows = queries.orderBy("path").collect()
    searched = index.search([row.features for row in query_rows])
    assert [[item for item, _ in found] for found in searched] == [[item for item, _ in expected[row.path]] for row in query_rows]

    uri = f"{mount(spark, tmp_path)}/pets-index"  # viewfs://: Python's open cannot read it
    index.write().overwrite().save(uri)
    loaded = VectorIndexModel.load(uri)
    assert loaded.num_vectors == 60 and loaded.getOrDefault("k") == 4
    register_index(spark, uri, name="nearest")
    queries.createOrReplaceTempView("queries")
    by_sql = {row.path: [cell.id for cell in row.found]
              for row in spark.sql("SELECT path, nearest(features, 2) AS found FROM queries").collect()}
    assert by_sql == {query: [item for item, _ in found[:2]] for query, found in expected.items()}


def test_null_features_get_null_neighbours_and_bad_params_are_one_line(spark):
    items, _ = _collection(spark, count=10)
    index = VectorIndex(k=2).fit(items)
    rows = spark.createDataFrame([("q", None), ("r", [0.0] * 6)], "path string, features array<double>")
    found = {row.path: row.neighbors for row in index.transform(rows).collect()}
    assert found["q"] is None and len(found["r"]) == 2
    with pytest.raises(ValueError, match="The 'k' parameter of VectorIndex must be a positive integer. Got 0"):
        VectorIndex(k=0).fit(items)
    with pytest.raises(ValueError, match="vectors of 3 values; the index holds 6"):
        index.search([[1.0, 2.0, 3.0]])
    assert deepframes.VectorIndex is VectorIndex
