"""Approximate search for ``nearest_neighbors``: ``method="ivf"`` (lists trained once on the driver
and shipped; query and item blocks joined by list) and ``method="hnsw"`` (a graph index built per
shard of items on the executors, searched by every query block).

Both make the candidate rows of the exact search (``query_block, query_id, item_id, distance``),
each pair measured again in float64, and leave the merge to ``nearest_neighbors``: an answer is
the exact distance of a pair the index found, ranked by ``(distance, id)``. What can be missed is
a true neighbour the index never offered; ``bench/similarity.py`` measures how often (recall@10).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..session import default_parallelism
from . import neighbors
from .neighbors import (_BLOCK_FIELDS, _ids, _matrix, _pair_candidates, _Search, _unit, best_pairs, candidate_batch,
                        candidates_wanted, check_widths, distances)

IVF_PROBES = 8  # lists searched per query unless ``probes`` says otherwise
TRAINING_ROWS_PER_LIST = 64  # items sampled to the driver per list to train the centroids
HNSW_EF = 64  # breadth of the graph search unless ``ef`` says otherwise
HNSW_LINKS = 32  # links per vector in the graph (faiss' M)
HNSW_BUILD_EF = 64  # breadth of the search that places each vector while building
SHARD_ROWS = 16384  # items per graph at most (32 MB of float32 at 512 values: a shard is one row in the JVM)

_BLOCK_SCHEMA = "list int, block long, ids array<{id_type}>, matrix binary, num_rows int, width int"


def check_tuning(method: str, lists: int | None, probes: int | None, ef: int | None) -> None:
    """One-line errors for the tuning parameters, and for a missing faiss, before any job runs."""
    for name, value, owner in (("lists", lists, "ivf"), ("probes", probes, "ivf"), ("ef", ef, "hnsw")):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"The '{name}' parameter of nearest_neighbors must be a positive integer. Got {value!r} instead.")
        if method != owner:
            raise ValueError(f"The '{name}' parameter of nearest_neighbors tunes method='{owner}'. Got method={method!r} "
                             f"instead: leave '{name}' out or set method='{owner}'.")
    if method != "exact":
        _faiss(method)


def _faiss(method: str):
    try:
        import faiss
    except ImportError:
        raise ImportError(f"nearest_neighbors: method={method!r} needs faiss: pip install 'deepframes[similarity]'") from None
    return faiss


def approximate_candidates(method: str, query_blocks: DataFrame, item_blocks: DataFrame, search: _Search,
                           candidate_schema: str, *, lists: int | None, probes: int | None, ef: int | None) -> DataFrame:
    """The candidate rows of ``method`` ("ivf" or "hnsw") for the merge of ``nearest_neighbors``."""
    sizes = [(row.block, row.num_rows) for row in item_blocks.select("block", "num_rows").collect()]
    if not sizes:
        return item_blocks.sparkSession.createDataFrame([], candidate_schema)
    if method == "ivf":
        pairs = _list_pairs(query_blocks, item_blocks, search.metric, sum(size for _, size in sizes), lists, probes)
        return pairs.mapInArrow(functools.partial(_pair_candidates, search=search), candidate_schema)
    shards = _graph_shards(item_blocks, sizes, search.metric)
    pairs = query_blocks.select(*[F.col(name).alias(f"q_{name}") for name in _BLOCK_FIELDS]).crossJoin(
        shards.select(*[F.col(name).alias(f"i_{name}") for name in shards.columns]))
    return pairs.mapInArrow(functools.partial(_graph_candidates, search=search, ef=ef or HNSW_EF), candidate_schema)


# ---- ivf: centroids trained once, an equi-join of blocks by list ----


@dataclass(frozen=True)
class _Lists:
    """What the executors need to sort rows into lists: the centroids (float32 bytes, unit rows
    for cosine), the metric, and how many lists each row goes to."""

    centroids: bytes
    width: int
    metric: str
    probes: int
    piece_rows: int  # rows per piece at most: a pair's distance matrix stays that of two blocks


def _list_pairs(query_blocks: DataFrame, item_blocks: DataFrame, metric: str, total: int, lists: int | None,
                probes: int | None) -> DataFrame:
    """Pairs of (the queries of a block that probe a list, that list's items): the columns of
    ``_pair_candidates``, so each pair is one BLAS product and a partial top-k."""
    # By default lists of about sqrt(n) items, and at least 39 items per list (k-means' own floor).
    num_lists = max(1, min(lists, total) if lists else min(round(math.sqrt(total)), total // 39))
    centroids = _train_centroids(item_blocks, num_lists, total, metric)
    id_type = item_blocks.schema["ids"].dataType.elementType.simpleString()
    schema = _BLOCK_SCHEMA.format(id_type=id_type)
    item_centroids = _Lists(centroids.tobytes(), centroids.shape[1], metric, 1, neighbors.BLOCK_ROWS)
    query_centroids = _Lists(centroids.tobytes(), centroids.shape[1], metric, min(probes or IVF_PROBES, len(centroids)),
                             neighbors.BLOCK_ROWS)
    item_lists = (item_blocks.mapInArrow(functools.partial(_list_pieces, lists=item_centroids), schema)
                  .groupBy("list").applyInArrow(_list_joiner(neighbors.BLOCK_ROWS), schema))
    query_pieces = query_blocks.mapInArrow(functools.partial(_list_pieces, lists=query_centroids), schema)
    # A hash join: the items of a list are few; sorting the many query pieces would spill.
    return query_pieces.select(*[F.col(name).alias(f"q_{name}") for name in ("list", *_BLOCK_FIELDS)]).join(
        item_lists.select(*[F.col(name).alias(f"i_{name}") for name in ("list", *_BLOCK_FIELDS)]).hint("shuffle_hash"),
        F.col("q_list") == F.col("i_list"))


def _train_centroids(item_blocks: DataFrame, num_lists: int, total: int, metric: str) -> np.ndarray:
    """k-means centroids of a sample of the items (spherical for cosine), on the driver."""
    faiss = _faiss("ivf")
    fraction = min(1.0, TRAINING_ROWS_PER_LIST * num_lists / max(total, 1))
    sample = item_blocks.mapInArrow(functools.partial(_sample, fraction=fraction), "matrix binary, num_rows int, width int")
    parts = [np.frombuffer(row.matrix, dtype=np.float32).reshape(row.num_rows, row.width) for row in sample.collect()]
    matrix = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
    if len(matrix) == 0:
        return np.zeros((1, matrix.shape[1]), np.float32)
    matrix = np.ascontiguousarray(_unit(matrix) if metric == "cosine" else matrix, dtype=np.float32)
    kmeans = faiss.Kmeans(matrix.shape[1], min(num_lists, len(matrix)), niter=20, seed=1, spherical=metric == "cosine",
                          min_points_per_centroid=1, max_points_per_centroid=TRAINING_ROWS_PER_LIST)
    kmeans.train(matrix)
    return np.asarray(kmeans.centroids, dtype=np.float32)


def _sample(batches: Iterator[pa.RecordBatch], fraction: float) -> Iterator[pa.RecordBatch]:
    """About ``fraction`` of each block's rows, the same rows every run (seeded by the block)."""
    for batch in batches:
        for row in batch.to_pylist():
            matrix = np.frombuffer(row["matrix"], dtype=np.float32).reshape(row["num_rows"], row["width"])
            chosen = matrix[np.random.default_rng(row["block"]).random(len(matrix)) < fraction]
            yield pa.RecordBatch.from_pydict({"matrix": [chosen.tobytes()], "num_rows": pa.array([len(chosen)], pa.int32()),
                                              "width": pa.array([row["width"]], pa.int32())})


def _list_pieces(batches: Iterator[pa.RecordBatch], lists: _Lists) -> Iterator[pa.RecordBatch]:
    """Each block cut by list: for every list that a row of the block goes to (its ``probes``
    nearest), one row with the block's id and those rows."""
    centroids = np.frombuffer(lists.centroids, dtype=np.float32).reshape(-1, lists.width)
    for batch in batches:
        id_type = batch.schema.field("ids").type
        for row in batch.to_pylist():
            matrix = np.frombuffer(row["matrix"], dtype=np.float32).reshape(row["num_rows"], row["width"])
            check_widths(matrix.shape[1], lists.width)
            rough = distances(matrix, centroids, lists.metric)
            chosen = (np.argpartition(rough, lists.probes - 1, axis=1)[:, :lists.probes] if lists.probes < len(centroids)
                      else np.broadcast_to(np.arange(len(centroids)), rough.shape))
            rows = np.repeat(np.arange(len(matrix)), chosen.shape[1])
            order = np.argsort(chosen.ravel(), kind="stable")
            list_of, rows = chosen.ravel()[order], rows[order]
            # A new piece where the list changes, and every piece_rows rows within a list.
            changes = np.r_[True, list_of[1:] != list_of[:-1]] if len(rows) else np.zeros(0, bool)
            list_start = np.maximum.accumulate(np.where(changes, np.arange(len(rows)), 0))
            starts = np.flatnonzero(changes | ((np.arange(len(rows)) - list_start) % lists.piece_rows == 0))
            pieces = np.split(rows, starts[1:])
            ids = _ids(row["ids"])
            yield pa.RecordBatch.from_pydict({
                "list": pa.array(list_of[starts], pa.int32()),
                "block": pa.array(np.full(len(starts), row["block"], dtype=np.int64)),
                "ids": pa.array([ids[piece].tolist() for piece in pieces], id_type),
                "matrix": [matrix[piece].tobytes() for piece in pieces],
                "num_rows": pa.array([len(piece) for piece in pieces], pa.int32()),
                "width": pa.array(np.full(len(starts), matrix.shape[1]), pa.int32()),
            })


def _list_joiner(block_rows: int):
    """``_join_list`` for ``applyInArrow``, which reads the kind of function from its type hints."""

    def join(table: pa.Table) -> pa.Table:
        return _join_list(table, block_rows)

    return join


def _join_list(table: pa.Table, block_rows: int) -> pa.Table:
    """One list's pieces (from every item block) as blocks of at most ``block_rows`` rows."""
    width = table.column("width")[0].as_py()
    ids = pa.concat_arrays([chunk.flatten() for chunk in table.column("ids").chunks])
    matrix = np.concatenate([np.frombuffer(piece, dtype=np.float32) for piece in table.column("matrix").to_pylist()])
    matrix = matrix.reshape(-1, width)
    starts = range(0, len(matrix), block_rows)
    return pa.table({
        "list": pa.array(np.full(len(starts), table.column("list")[0].as_py()), pa.int32()),
        "block": pa.array(range(len(starts)), pa.int64()),
        "ids": pa.ListArray.from_arrays(pa.array([*starts, len(matrix)], pa.int32()), ids),
        "matrix": [matrix[start:start + block_rows].tobytes() for start in starts],
        "num_rows": pa.array([min(block_rows, len(matrix) - start) for start in starts], pa.int32()),
        "width": pa.array(np.full(len(starts), width), pa.int32()),
    })


# ---- hnsw: a graph per shard of items, built on the executors ----


def _graph_shards(item_blocks: DataFrame, sizes: list[tuple[int, int]], metric: str) -> DataFrame:
    """The item blocks gathered into shards of at most about ``SHARD_ROWS`` rows (at least one per
    core while there are blocks enough), each with its graph: built once, kept on the executors."""
    num_shards = max(math.ceil(sum(size for _, size in sizes) / SHARD_ROWS),
                     min(len(sizes), default_parallelism(item_blocks.sparkSession)), 1)
    loads = [0] * num_shards
    assignment = []
    for block, size in sorted(sizes, key=lambda pair: (-pair[1], pair[0])):  # largest first, to the lightest shard
        shard = loads.index(min(loads))
        loads[shard] += size
        assignment.append((block, shard))
    shard_of = F.create_map(*[F.lit(value) for pair in assignment for value in pair])  # block -> shard, a literal
    id_type = item_blocks.schema["ids"].dataType.elementType.simpleString()
    schema = f"block long, ids array<{id_type}>, matrix binary, num_rows int, width int, graph binary"
    shards = (item_blocks.withColumn("shard", shard_of[F.col("block")])
              .groupBy("shard").applyInArrow(_graph_builder(metric), schema))
    return shards.localCheckpoint(eager=True)


def _graph_builder(metric: str):
    """``_build_graph`` for ``applyInArrow``, which reads the kind of function from its type hints."""

    def build(table: pa.Table) -> pa.Table:
        return _build_graph(table, metric)

    return build


def _build_graph(table: pa.Table, metric: str) -> pa.Table:
    """One shard's blocks as one row: the ids, the float32 vectors (for the float64 re-ranking)
    and faiss' HNSW graph of them, serialized."""
    faiss = _faiss("hnsw")
    faiss.omp_set_num_threads(1)  # one task per core: the executor's cores are its tasks'
    table = table.sort_by("block")
    width = table.column("width")[0].as_py()
    matrix = np.concatenate([np.frombuffer(piece, dtype=np.float32) for piece in table.column("matrix").to_pylist()])
    matrix = matrix.reshape(-1, width)
    graph = faiss.IndexHNSWFlat(width, HNSW_LINKS, _faiss_metric(faiss, metric))
    graph.hnsw.efConstruction = HNSW_BUILD_EF
    graph.add(_indexed(matrix, metric))
    ids = pa.concat_arrays([chunk.flatten() for chunk in table.column("ids").chunks])
    return pa.table({
        "block": pa.array([table.column("shard")[0].as_py()], pa.int64()),
        "ids": pa.ListArray.from_arrays(pa.array([0, len(ids)], pa.int32()), ids),
        "matrix": [matrix.tobytes()],
        "num_rows": pa.array([len(matrix)], pa.int32()),
        "width": pa.array([width], pa.int32()),
        "graph": [faiss.serialize_index(graph).tobytes()],
    })


def _faiss_metric(faiss, metric: str) -> int:
    # Cosine order is inner-product order on unit vectors.
    return faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2


def _indexed(matrix: np.ndarray, metric: str) -> np.ndarray:
    """The vectors as the graph holds them: unit vectors for cosine."""
    return np.ascontiguousarray(_unit(matrix) if metric == "cosine" else matrix, dtype=np.float32)


def _graph_candidates(batches: Iterator[pa.RecordBatch], search: _Search, ef: int) -> Iterator[pa.RecordBatch]:
    """For each (query block, shard) pair: each query's best items among those the graph offers,
    measured again in float64, at most ``k`` of them."""
    faiss = _faiss("hnsw")
    faiss.omp_set_num_threads(1)
    loaded: tuple[int, object] | None = None  # the last shard's graph: consecutive pairs often share it
    for batch in batches:
        for position in range(batch.num_rows):
            row = batch.slice(position, 1).select([name for name in batch.schema.names if name != "i_graph"]).to_pylist()[0]
            if loaded is None or loaded[0] != row["i_block"]:
                buffer = np.frombuffer(batch.column("i_graph")[position].as_buffer(), dtype=np.uint8)
                loaded = (row["i_block"], faiss.deserialize_index(buffer))
            graph = loaded[1]
            queries, items = _matrix(row, "q"), _matrix(row, "i")
            check_widths(queries.shape[1], items.shape[1])
            query_ids, item_ids = _ids(row["q_ids"]), _ids(row["i_ids"])
            wanted = candidates_wanted(search.k, len(items), search.exclude_self, search.rough_per_k)
            graph.hnsw.efSearch = max(ef, wanted)
            _, chosen = graph.search(_indexed(queries, search.metric), wanted)
            query_rows = np.repeat(np.arange(len(queries)), wanted)
            found = chosen.ravel() >= 0  # -1: the graph offered fewer than asked
            found_rows = best_pairs(queries, items, query_rows[found], chosen.ravel()[found], item_ids, search.k,
                                    search.metric, query_ids if search.exclude_self else None)
            yield candidate_batch(found_rows, query_ids, item_ids, row["q_block"], batch.schema.field("q_ids").type.value_type)


__all__ = ["approximate_candidates", "check_tuning"]
