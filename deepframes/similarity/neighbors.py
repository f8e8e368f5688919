"""``nearest_neighbors``: for every query row, its k nearest item rows, exactly, at Spark scale.

Rows never meet rows in a join. Each side is cut into blocks of at most ``BLOCK_ROWS`` vectors
(one Arrow row per block: the ids and a float32 matrix), the blocks are paired (a cross join of
blocks, so a task holds one query block and one item block: memory bounded by the block size, not
by either side), and each pair is one matrix product with BLAS on the executor followed by a
partial top-k. The partial lists of a query block are then merged in one group. Candidates are
chosen in float32 (twice as many as asked, to absorb rounding), then their distances are computed
again in float64 and ranked by ``(distance, id)``: the answer is that of a float64 brute force
with ties broken by id.
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
METHODS = ("exact",)
BLOCK_ROWS = 4096

_BLOCK_FIELDS = ("block", "ids", "matrix", "num_rows", "width")


@dataclass(frozen=True)
class _Search:
    """What the executors need: the metric, how many neighbours, and whether a row may be its own."""

    metric: str
    k: int
    exclude_self: bool


def nearest_neighbors(queries: DataFrame, items: DataFrame | None = None, k: int = 10, *,
                      featuresCol: str = "features", idCol: str | None = None, metric: str = "cosine",
                      method: str = "exact") -> DataFrame:
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
    method : {"exact"}
        Exact search: blocks of items multiplied against blocks of queries; the result equals a
        float64 brute force with ties broken by id.

    Returns
    -------
    DataFrame
        ``query_id, item_id, distance`` (double) and ``rank`` (1 = nearest), ``k`` rows per query.
        The blocks of each side are made when this is called (one job each) and kept on the
        executors; the search runs when the result is read.

    Examples
    --------
    >>> import deepframes
    >>> spark = deepframes.session("local[2]")
    >>> points = spark.createDataFrame([(1, [1.0, 0.0]), (2, [0.9, 0.1]), (3, [0.0, 1.0])], "id int, features array<double>")
    >>> [(row.query_id, row.item_id) for row in nearest_neighbors(points, k=1).orderBy("query_id").collect()]
    [(1, 2), (2, 1), (3, 2)]
    """
    _check_choice("metric", metric, METRICS)
    _check_choice("method", method, METHODS)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"The 'k' parameter of nearest_neighbors must be a positive integer. Got {k!r} instead.")
    query_id = _id_column(queries, idCol, "queries")
    query_blocks = _blocks(queries, query_id, featuresCol, "queries")
    if items is None:
        item_blocks, item_id = query_blocks, query_id
    else:
        item_id = _id_column(items, idCol, "items")
        item_blocks = _blocks(items, item_id, featuresCol, "items")
        if queries.schema[query_id].dataType != items.schema[item_id].dataType:
            raise TypeError(
                f"nearest_neighbors: the id columns differ in type ({queries.schema[query_id].dataType.simpleString()} "
                f"and {items.schema[item_id].dataType.simpleString()}); cast one of them."
            )
    search = _Search(metric, k, exclude_self=items is None)
    id_type = queries.schema[query_id].dataType
    pairs = query_blocks.select(*[F.col(name).alias(f"q_{name}") for name in _BLOCK_FIELDS]).crossJoin(
        item_blocks.select(*[F.col(name).alias(f"i_{name}") for name in _BLOCK_FIELDS]))
    candidate_schema = (f"query_block long, query_id {id_type.simpleString()}, item_id {id_type.simpleString()}, "
                        "distance double")
    candidates = pairs.mapInArrow(functools.partial(_pair_candidates, search=search), candidate_schema)
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


def _blocks(df: DataFrame, id_col: str, features_col: str, side: str) -> DataFrame:
    """``df`` as blocks of at most ``BLOCK_ROWS`` rows: block id, ids, float32 matrix, rows, width."""
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
    blocks = rows.mapInArrow(functools.partial(_to_blocks, block_rows=BLOCK_ROWS), schema)
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
            if queries.shape[1] != items.shape[1]:
                raise ValueError(f"nearest_neighbors: queries have {queries.shape[1]} features and items "
                                 f"{items.shape[1]}; both sides need vectors of one width.")
            yield _candidates(queries, _ids(row["q_ids"]), items, _ids(row["i_ids"]), row["q_block"], search, id_type)


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


def pair_distances(queries: np.ndarray, items: np.ndarray, metric: str) -> np.ndarray:
    """Distances of row i of ``queries`` to row i of ``items`` (float64), the exact re-ranking."""
    queries, items = queries.astype(np.float64), items.astype(np.float64)
    if metric == "cosine":
        return 1.0 - np.einsum("ij,ij->i", _unit(queries), _unit(items))
    difference = queries - items
    return np.sqrt(np.einsum("ij,ij->i", difference, difference))


def nearest_rows(queries: np.ndarray, items: np.ndarray, item_ids: np.ndarray, k: int, metric: str,
                 query_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each query's ``k`` nearest items: ``(query rows, item rows, float64 distances)``, ranked by
    query, then distance, then item id. Candidates are chosen in the inputs' precision (twice
    as many as asked), then measured again in float64. With ``query_ids``, an item with the
    query's own id is never its neighbour.

    >>> nearest_rows(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0], [1.0, 0.1]]), np.array(["a", "b"]), 1, "cosine")[1]
    array([1])
    """
    wanted = min(2 * k + int(query_ids is not None), len(items))
    if wanted == 0 or len(queries) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    rough = distances(queries, items, metric)
    chosen = (np.argpartition(rough, wanted - 1, axis=1)[:, :wanted] if wanted < len(items)
              else np.broadcast_to(np.arange(len(items)), (len(queries), len(items))))
    query_rows = np.repeat(np.arange(len(queries)), chosen.shape[1])
    item_rows = chosen.ravel()
    exact = pair_distances(queries[query_rows], items[item_rows], metric)
    if query_ids is not None:
        keep = query_ids[query_rows] != item_ids[item_rows]
        query_rows, item_rows, exact = query_rows[keep], item_rows[keep], exact[keep]
    order = _ranked(query_rows, exact, item_ids[item_rows])
    query_rows, item_rows, exact = query_rows[order], item_rows[order], exact[order]
    first = _rank_within(query_rows) < k
    return query_rows[first], item_rows[first], exact[first]


def _candidates(queries: np.ndarray, query_ids: np.ndarray, items: np.ndarray, item_ids: np.ndarray, block: int,
                search: _Search, id_type: pa.DataType) -> pa.RecordBatch:
    query_rows, item_rows, exact = nearest_rows(queries, items, item_ids, search.k, search.metric,
                                                query_ids if search.exclude_self else None)
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
