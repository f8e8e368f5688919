"""``nearest_neighbors``: for every query row, its k nearest item rows, exactly, at Spark scale.

Rows never meet rows in a join. Each side is cut into blocks of at most ``BLOCK_ROWS`` vectors
(one Arrow row per block: the ids and a float32 matrix), the blocks are paired (a cross join of
blocks, so a task holds one query block and one item block: memory bounded by the block size, not
by either side), and each pair is one matrix product with BLAS on the executor followed by a
partial top-k. The partial lists of a query block are then merged in one group. Candidates are
chosen in float32 (twice as many as asked, to absorb rounding), then their distances are computed
again in float64 and ranked by ``(distance, id)``: the answer is that of a float64 brute force
with ties broken by id. The approximate methods (``approximate.py``: ``"ivf"``, ``"hnsw"``) make
the same blocks and candidate rows, re-ranked and merged the same way, from fewer pairs.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.ml.functions import vector_to_array
from pyspark.ml.linalg import VectorUDT
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DoubleType, FloatType, NumericType, StringType

METRICS = ("cosine", "euclidean")
METHODS = ("exact", "ivf", "hnsw")
BLOCK_ROWS = 4096
APPROXIMATE_BLOCKS_PER_QUERY_BLOCK = 4  # query blocks of ivf and hnsw: 16,384 rows
_PAIRS_PER_SLICE = 2048  # pairs re-ranked at once: 2 x 8 MB of float64 at 512 values, in cache

_BLOCK_FIELDS = ("block", "ids", "matrix", "num_rows", "width")


@dataclass(frozen=True)
class _Search:
    """What the executors need: the metric, how many neighbours, whether a row may be its own, and
    how many rough candidates per neighbour go to the float64 re-ranking (2 for exact search, to
    absorb float32 rounding; 1 for approximate search, whose candidates are approximate anyway)."""

    metric: str
    k: int
    exclude_self: bool
    rough_per_k: int = 2


def nearest_neighbors(queries: DataFrame, items: DataFrame | None = None, k: int = 10, *,
                      featuresCol: str = "features", idCol: str | None = None, metric: str = "cosine",
                      method: str = "exact", lists: int | None = None, probes: int | None = None,
                      ef: int | None = None) -> DataFrame:
    """The ``k`` nearest items of every query row: ``query_id, item_id, distance, rank``.

    Parameters
    ----------
    queries, items : DataFrame
        Any size, with a vector (``pyspark.ml.linalg``) or numeric array column ``featuresCol``
        of one width (held as float32), and a unique id column. Rows with null features are left out. Without
        ``items``, the queries are searched among themselves and each row's own id is excluded
        (a self-join: near-duplicates, "photos like this one" within a collection).
    k : int
        Neighbours per query (fewer when there are fewer items).
    idCol : str, optional
        The id column; by default ``path`` if there is one, else ``id``.
    metric : {"cosine", "euclidean"}
        Cosine distance (1 - cosine similarity; 0 for the same direction) or Euclidean distance.
    method : {"exact", "ivf", "hnsw"}
        ``"exact"``: blocks of items multiplied against blocks of queries; the result equals a
        float64 brute force with ties broken by id. ``"ivf"`` and ``"hnsw"`` are approximate
        (through faiss): ``"ivf"`` trains k-means centroids once, on the driver, from a sample of
        the items, and ships them; each item goes to the list of its nearest centroid, each query
        to its ``probes`` nearest lists, and query and item blocks meet by list (an equi-join,
        not a cross join): about ``probes / lists`` of the exact work. ``"hnsw"`` builds a faiss
        HNSW graph on the executors for each shard of at most 16,384 items, and every query
        block searches every shard. Both measure each pair they find in float64 and rank as
        exact does; what they can do is miss a true neighbour (recall@10 above 0.95 on clustered
        data with the defaults: ``bench/similarity.py`` measures it). A task holds one block of
        queries and one list or shard of items, never a whole side.
    lists : int, optional
        ``"ivf"``: how many lists (k-means centroids); by default about the square root of the
        number of items, with at least 39 items per list.
    probes : int, optional
        ``"ivf"``: lists searched per query (default 8, at most ``lists``); the work and the
        recall grow with it.
    ef : int, optional
        ``"hnsw"``: the breadth of each graph search (faiss' ``efSearch``; default 64, at least
        ``k + 1``); the work and the recall grow with it.

    Returns
    -------
    DataFrame
        ``query_id, item_id, distance`` (double) and ``rank`` (1 = nearest), ``k`` rows per query.
        The blocks of each side are made when this is called (one job each) and kept on the
        executors, with the lists' centroids or the shards' graphs; the search runs when the
        result is read.

    Raises
    ------
    ValueError
        For a parameter out of range, a missing column, or vectors of different widths.
    ImportError
        For ``"ivf"`` or ``"hnsw"`` without faiss (``pip install 'deepframes[similarity]'``).

    Examples
    --------
    >>> import deepframes
    >>> spark = deepframes.session("local[2]")
    >>> points = spark.createDataFrame([(1, [1.0, 0.0]), (2, [0.9, 0.1]), (3, [0.0, 1.0])], "id int, features array<double>")
    >>> [(row.query_id, row.item_id) for row in nearest_neighbors(points, k=1).orderBy("query_id").collect()]
    [(1, 2), (2, 1), (3, 2)]
    >>> approximate = nearest_neighbors(points, k=1, method="hnsw", ef=32)  # faiss' HNSW graphs
    >>> [(row.query_id, row.item_id, round(row.distance, 4)) for row in approximate.orderBy("query_id").collect()]
    [(1, 2, 0.0061), (2, 1, 0.0061), (3, 2, 0.8896)]
    """
    _check_choice("metric", metric, METRICS)
    _check_choice("method", method, METHODS)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"The 'k' parameter of nearest_neighbors must be a positive integer. Got {k!r} instead.")
    from .approximate import approximate_candidates, check_tuning  # it builds on this module

    check_tuning(method, lists, probes, ef)
    query_id = _id_column(queries, idCol, "queries")
    # Approximate search pairs a query block with a list or a shard, not with every item block:
    # larger query blocks mean fewer pairs, each copying its list or shard once.
    block_rows = BLOCK_ROWS if method == "exact" else BLOCK_ROWS * APPROXIMATE_BLOCKS_PER_QUERY_BLOCK
    query_blocks = _blocks(queries, query_id, featuresCol, "queries", block_rows)
    if items is None:
        item_blocks, item_id = query_blocks, query_id
    else:
        item_id = _id_column(items, idCol, "items")
        item_blocks = _blocks(items, item_id, featuresCol, "items", block_rows)
        if queries.schema[query_id].dataType != items.schema[item_id].dataType:
            raise TypeError(
                f"nearest_neighbors: the id columns differ in type ({queries.schema[query_id].dataType.simpleString()} "
                f"and {items.schema[item_id].dataType.simpleString()}); cast one of them."
            )
    search = _Search(metric, k, exclude_self=items is None, rough_per_k=2 if method == "exact" else 1)
    id_type = queries.schema[query_id].dataType
    candidate_schema = (f"query_block long, query_id {id_type.simpleString()}, item_id {id_type.simpleString()}, "
                        "distance double")
    if method == "exact":
        pairs = query_blocks.select(*[F.col(name).alias(f"q_{name}") for name in _BLOCK_FIELDS]).crossJoin(
            item_blocks.select(*[F.col(name).alias(f"i_{name}") for name in _BLOCK_FIELDS]))
        candidates = pairs.mapInArrow(functools.partial(_pair_candidates, search=search), candidate_schema)
    else:
        candidates = approximate_candidates(method, query_blocks, item_blocks, search, candidate_schema, lists=lists,
                                            probes=probes, ef=ef)
    result_schema = f"query_id {id_type.simpleString()}, item_id {id_type.simpleString()}, distance double, rank int"
    return candidates.groupBy("query_block").applyInArrow(_merger(k), result_schema)


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"The '{name}' parameter of nearest_neighbors must be one of {list(choices)}. Got {value!r} instead.")


def _id_column(df: DataFrame, id_col: str | None, side: str) -> str:
    if id_col is not None:
        if id_col not in df.columns:
            raise ValueError(f"nearest_neighbors: {side} have no id column {id_col!r} (columns: {df.columns}). "
                             "Set idCol to a column of unique ids.")
        return id_col
    for name in ("path", "id"):
        if name in df.columns:
            return name
    raise ValueError(f"nearest_neighbors: {side} have no 'path' or 'id' column to name the rows (columns: "
                     f"{df.columns}). Set idCol to a column of unique ids.")


def _blocks(df: DataFrame, id_col: str, features_col: str, side: str, block_rows: int) -> DataFrame:
    """``df`` as blocks of at most ``block_rows`` rows: block id, ids, float32 matrix, rows, width."""
    if features_col not in df.columns:
        raise ValueError(f"nearest_neighbors: {side} have no column {features_col!r} (columns: {df.columns}). "
                         "Set featuresCol to the column of vectors.")
    kind = df.schema[features_col].dataType
    if isinstance(kind, VectorUDT):
        features = vector_to_array(F.col(features_col), "float32")
    elif isinstance(kind, ArrayType) and isinstance(kind.elementType, NumericType):
        features = F.col(features_col).cast(ArrayType(FloatType()))
    else:
        raise TypeError(f"nearest_neighbors: {side} column {features_col!r} must be an ML vector or a numeric array; "
                        f"it is {kind.simpleString()}.")
    id_type = df.schema[id_col].dataType
    rows = df.where(F.col(features_col).isNotNull()).select(F.col(id_col).alias("id"), features.alias("features"))
    schema = (f"block long, ids array<{id_type.simpleString()}>, matrix binary, num_rows int, width int")
    # The block size is read here, on the driver, and shipped with the function. The blocks are
    # made once, in one job, and kept on the executors (memory, else disk): the pairing computes
    # each side again for every pair of partitions, and must see the same blocks every time.
    blocks = rows.mapInArrow(functools.partial(_to_blocks, block_rows=block_rows), schema)
    return blocks.localCheckpoint(eager=True)


def _to_blocks(batches: Iterator[pa.RecordBatch], block_rows: int) -> Iterator[pa.RecordBatch]:
    from pyspark import TaskContext

    partition = TaskContext.get().partitionId()
    pending: list[pa.RecordBatch] = []
    num_pending, number = 0, 0
    for batch in batches:
        pending.append(batch)
        num_pending += batch.num_rows
        while num_pending >= block_rows:
            table = pa.Table.from_batches(pending)
            yield _block(table.slice(0, block_rows), partition, number)
            number += 1
            rest = table.slice(block_rows)
            pending, num_pending = rest.to_batches(), rest.num_rows
    if num_pending:
        yield _block(pa.Table.from_batches(pending), partition, number)


def _block(table: pa.Table, partition: int, number: int) -> pa.RecordBatch:
    features = table.column("features").combine_chunks()
    widths = np.unique(pc.list_value_length(features).to_numpy(zero_copy_only=False))
    if len(widths) > 1:
        raise ValueError(f"nearest_neighbors: the feature vectors have different widths ({widths.tolist()}); "
                         "every vector must have the same number of values.")
    width = int(widths[0]) if len(widths) else 0
    matrix = np.asarray(features.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(len(features), width)
    return pa.RecordBatch.from_pydict({
        "block": [(partition << 24) + number],
        "ids": pa.array([table.column("id").combine_chunks()], pa.list_(table.schema.field("id").type)),
        "matrix": [matrix.tobytes()],
        "num_rows": pa.array([len(features)], pa.int32()),
        "width": pa.array([width], pa.int32()),
    })


def _matrix(row: dict, prefix: str) -> np.ndarray:
    return np.frombuffer(row[f"{prefix}_matrix"], dtype=np.float32).reshape(row[f"{prefix}_num_rows"], row[f"{prefix}_width"])


def _pair_candidates(batches: Iterator[pa.RecordBatch], search: _Search) -> Iterator[pa.RecordBatch]:
    """For each (query block, item block) pair: each query's best items in that block, by
    ``(float64 distance, id)``, at most ``k`` of them."""
    for batch in batches:
        id_type = batch.schema.field("q_ids").type.value_type
        for row in batch.to_pylist():
            queries, items = _matrix(row, "q"), _matrix(row, "i")
            check_widths(queries.shape[1], items.shape[1])
            yield _candidates(queries, _ids(row["q_ids"]), items, _ids(row["i_ids"]), row["q_block"], search, id_type)


def check_widths(query_width: int, item_width: int) -> None:
    if query_width != item_width:
        raise ValueError(f"nearest_neighbors: queries have {query_width} features and items {item_width}; "
                         "both sides need vectors of one width.")


def _ids(values: list) -> np.ndarray:
    """Ids as a typed NumPy array (int64, or fixed-width strings): sorting and comparing them is
    much quicker than as Python objects."""
    return np.asarray(values) if values else np.zeros(0, dtype=np.int64)


def distances(queries: np.ndarray, items: np.ndarray, metric: str) -> np.ndarray:
    """The (queries x items) distance matrix, in the inputs' precision.

    >>> distances(np.array([[3.0, 4.0]]), np.array([[3.0, 4.0], [0.0, 0.0]]), "euclidean").tolist()
    [[0.0, 5.0]]
    """
    if metric == "cosine":
        return 1.0 - _unit(queries) @ _unit(items).T
    squared = (queries * queries).sum(1)[:, None] + (items * items).sum(1)[None, :] - 2.0 * (queries @ items.T)
    return np.sqrt(np.maximum(squared, 0.0))


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


def pair_distances(queries: np.ndarray, items: np.ndarray, metric: str, query_rows: np.ndarray | None = None,
                   item_rows: np.ndarray | None = None) -> np.ndarray:
    """Distances of row i of ``queries`` to row i of ``items`` (float64), the exact re-ranking; with
    ``query_rows`` and ``item_rows``, of ``queries[query_rows[i]]`` to ``items[item_rows[i]]``.

    Each row is measured as if alone (the same numbers), but a side with fewer rows than pairs is
    converted once, and the pairs go in slices that stay in cache: many times faster than whole
    arrays of pairs, which are memory-bound.

    >>> pair_distances(np.array([[3.0, 4.0]]), np.array([[0.0, 0.0], [3.0, 0.0]]), "euclidean", np.array([0, 0]), np.array([0, 1])).tolist()
    [5.0, 4.0]
    """
    if query_rows is None or item_rows is None:
        query_rows = item_rows = np.arange(len(queries))
    query_side, item_side = _measured_rows(queries, query_rows, metric), _measured_rows(items, item_rows, metric)
    found = np.empty(len(query_rows))
    for start in range(0, len(query_rows), _PAIRS_PER_SLICE):
        part = slice(start, start + _PAIRS_PER_SLICE)
        if metric == "cosine":
            found[part] = 1.0 - np.einsum("ij,ij->i", query_side(part), item_side(part))
        else:
            difference = query_side(part) - item_side(part)
            found[part] = np.sqrt(np.einsum("ij,ij->i", difference, difference))
    return found


def _measured_rows(matrix: np.ndarray, rows: np.ndarray, metric: str):
    """``part -> matrix[rows[part]]`` in float64 (unit rows for cosine)."""

    def measured(block: np.ndarray) -> np.ndarray:
        block = block.astype(np.float64)
        return _unit(block) if metric == "cosine" else block

    if 2 * len(matrix) <= len(rows):  # rows used twice or more on average: convert each once
        whole = measured(matrix)
        return lambda part: whole[rows[part]]
    return lambda part: measured(matrix[rows[part]])


def nearest_rows(queries: np.ndarray, items: np.ndarray, item_ids: np.ndarray, k: int, metric: str,
                 query_ids: np.ndarray | None = None, rough_per_k: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each query's ``k`` nearest items: ``(query rows, item rows, float64 distances)``, ranked by
    query, then distance, then item id. Candidates are chosen in the inputs' precision
    (``rough_per_k`` times as many as asked), then measured again in float64. With
    ``query_ids``, an item with the query's own id is never its neighbour.

    >>> nearest_rows(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0], [1.0, 0.1]]), np.array(["a", "b"]), 1, "cosine")[1]
    array([1])
    """
    wanted = candidates_wanted(k, len(items), query_ids is not None, rough_per_k)
    if wanted == 0 or len(queries) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    rough = distances(queries, items, metric)
    chosen = (np.argpartition(rough, wanted - 1, axis=1)[:, :wanted] if wanted < len(items)
              else np.broadcast_to(np.arange(len(items)), (len(queries), len(items))))
    query_rows = np.repeat(np.arange(len(queries)), chosen.shape[1])
    return best_pairs(queries, items, query_rows, chosen.ravel(), item_ids, k, metric, query_ids)


def candidates_wanted(k: int, num_items: int, exclude_self: bool, rough_per_k: int = 2) -> int:
    """How many rough candidates a query takes before the float64 re-ranking: ``rough_per_k``
    times ``k``, one more when its own row may be among them."""
    return min(rough_per_k * k + int(exclude_self), num_items)


def best_pairs(queries: np.ndarray, items: np.ndarray, query_rows: np.ndarray, item_rows: np.ndarray,
               item_ids: np.ndarray, k: int, metric: str, query_ids: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate pairs ``(query_rows[j], item_rows[j])`` measured in float64, each query's ``k``
    best kept, ranked by query, distance, item id (``nearest_rows`` without choosing)."""
    exact = pair_distances(queries, items, metric, query_rows, item_rows)
    if query_ids is not None:
        keep = query_ids[query_rows] != item_ids[item_rows]
        query_rows, item_rows, exact = query_rows[keep], item_rows[keep], exact[keep]
    order = _ranked(query_rows, exact, item_ids[item_rows])
    query_rows, item_rows, exact = query_rows[order], item_rows[order], exact[order]
    first = _rank_within(query_rows) < k
    return query_rows[first], item_rows[first], exact[first]


def _candidates(queries: np.ndarray, query_ids: np.ndarray, items: np.ndarray, item_ids: np.ndarray, block: int,
                search: _Search, id_type: pa.DataType) -> pa.RecordBatch:
    found = nearest_rows(queries, items, item_ids, search.k, search.metric, query_ids if search.exclude_self else None,
                         search.rough_per_k)
    return candidate_batch(found, query_ids, item_ids, block, id_type)


def candidate_batch(found: tuple[np.ndarray, np.ndarray, np.ndarray], query_ids: np.ndarray, item_ids: np.ndarray,
                    block: int, id_type: pa.DataType) -> pa.RecordBatch:
    """``(query rows, item rows, distances)`` of one query block as rows for the merge."""
    query_rows, item_rows, exact = found
    return pa.RecordBatch.from_pydict({
        "query_block": pa.array(np.full(len(query_rows), block, dtype=np.int64)),
        "query_id": pa.array(query_ids[query_rows].tolist(), id_type),
        "item_id": pa.array(item_ids[item_rows].tolist(), id_type),
        "distance": pa.array(exact, pa.float64()),
    })


def _ranked(groups: np.ndarray, distance: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The order sorting rows by group, then distance, then id."""
    _, id_codes = np.unique(ids, return_inverse=True)
    return np.lexsort((id_codes.ravel(), distance, groups))


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal values of sorted ``groups``."""
    if len(groups) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    lengths = np.diff(np.r_[starts, len(groups)])
    return np.arange(len(groups)) - np.repeat(starts, lengths)


def _merger(k: int):
    """``_merge`` for ``applyInArrow``, which reads the kind of function from its type hints (a
    ``functools.partial`` has none)."""

    def merge(table: pa.Table) -> pa.Table:
        return _merge(table, k)

    return merge


def _merge(table: pa.Table, k: int) -> pa.Table:
    """One query block's candidates from every item block -> each query's k best, ranked."""
    query_ids = _ids(table.column("query_id").to_pylist())
    item_ids = _ids(table.column("item_id").to_pylist())
    distance = table.column("distance").to_numpy()
    _, groups = np.unique(query_ids, return_inverse=True)
    order = _ranked(groups.ravel(), distance, item_ids)
    rank = _rank_within(groups.ravel()[order])
    best = order[rank < k]
    return pa.table({
        "query_id": pa.array(query_ids[best].tolist(), table.schema.field("query_id").type),
        "item_id": pa.array(item_ids[best].tolist(), table.schema.field("item_id").type),
        "distance": pa.array(distance[best], pa.float64()),
        "rank": pa.array(rank[rank < k] + 1, pa.int32()),
    })


__all__ = ["METRICS", "distances", "nearest_neighbors", "nearest_rows", "pair_distances"]
