"""``VectorIndex``: a collection's vectors kept to search, fitted from a DataFrame, saved anywhere.

``VectorIndex(idCol="path").fit(df)`` gathers the vectors (float32) and their ids into one file
(NumPy's ``.npz``), which the fitted ``VectorIndexModel`` carries: ``save`` copies it under the
stage's path (any Hadoop URI), ``transform`` sends it to every executor once (``SparkFiles`` or a
Connect artifact) and appends each row's ``k`` nearest entries, ``search`` answers in-process
(the web service, ``predict``), and ``register_index`` makes it the SQL function
``nearest(features, k)``. The search is the exact one of ``nearest_neighbors`` (float64
re-ranking, ties broken by id); an index is meant to fit in a worker's memory (100,000 vectors of
512 floats are 200 MB): search larger collections with ``nearest_neighbors``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
from pyspark import keyword_only
from pyspark.ml import Estimator, Model
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasFeaturesCol, HasOutputCol
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_type, to_arrow_type
from pyspark.sql.types import ArrayType, DataType, DoubleType, StructField, StructType

from ..core.arrays import column_to_numpy, valid_rows
from ..core.files import digest_named_copy, ship_file, shipped_path
from ..core.params import STRING, ValidatedParams, check_value, integer, one_of
from ..core.persistence import ModelFileStage
from ..core.udf import OutputColumn, column_udf
from ..models.spec import file_digest
from .neighbors import METRICS, nearest_rows

_LOADED: dict[str, tuple[np.ndarray, np.ndarray]] = {}
_DIGESTS: dict[str, str] = {}


def _digest(path: str) -> str:
    """The index file's digest, read once per path (an index file is written once, never changed)."""
    if path not in _DIGESTS:
        _DIGESTS[path] = file_digest(path)
    return _DIGESTS[path]


class _IndexParams(ValidatedParams, HasFeaturesCol, HasOutputCol):
    idCol = Param(Params._dummy(), "idCol", "the column naming each indexed row", typeConverter=TypeConverters.toString)
    metric = Param(Params._dummy(), "metric", "cosine or euclidean", typeConverter=TypeConverters.toString)
    k = Param(Params._dummy(), "k", "neighbours per row that transform appends", typeConverter=TypeConverters.toInt)
    _parameter_constraints = {"idCol": STRING, "metric": one_of(*METRICS), "k": integer(1)}


class VectorIndex(Estimator, _IndexParams):
    """Fits a ``VectorIndexModel``: the vectors of ``featuresCol`` and their ids, kept to search.

    Parameters
    ----------
    featuresCol : str
        An ML vector or numeric array column; rows with null features are left out.
    idCol : str
        What a search answers with (a path, a name, a number).
    metric : {"cosine", "euclidean"}
    k : int
        Neighbours per row appended by the model's ``transform`` (``outputCol``, default
        ``neighbors``: an array of ``(id, distance)``, nearest first).

    Examples
    --------
    >>> import deepframes
    >>> spark = deepframes.session("local[2]")
    >>> items = spark.createDataFrame([("a", [1.0, 0.0]), ("b", [0.0, 1.0])], "id string, features array<double>")
    >>> index = VectorIndex(idCol="id", k=1).fit(items)
    >>> [(name, round(distance, 4)) for name, distance in index.search([[0.9, 0.2]])[0]]
    [('a', 0.0238)]
    >>> [row.neighbors[0].id for row in index.transform(items).collect()]
    ['a', 'b']
    """

    @keyword_only
    def __init__(self, *, featuresCol="features", idCol="path", metric="cosine", k=3, outputCol="neighbors"):
        super().__init__()
        self._setDefault(featuresCol="features", idCol="path", metric="cosine", k=3, outputCol="neighbors")
        self._set(**self._input_kwargs)

    def _fit(self, dataset: DataFrame) -> VectorIndexModel:
        features, id_col = self.getFeaturesCol(), self.getOrDefault(self.idCol)
        missing = [name for name in (features, id_col) if name not in dataset.columns]
        if missing:
            raise ValueError(f"VectorIndex: columns {missing} are not in the DataFrame (columns: {dataset.columns}). "
                             "Set featuresCol and idCol.")
        table = dataset.where(F.col(features).isNotNull()).select(id_col, features).toArrow()
        vectors = column_to_numpy(table.column(1), features).astype(np.float32) if table.num_rows else np.zeros((0, 0), np.float32)
        ids = np.asarray(table.column(0).to_pylist())
        if vectors.ndim != 2:
            raise ValueError(f"VectorIndex: column {features!r} must hold vectors of one width.")
        model = VectorIndexModel(indexFile=write_index(vectors, ids))
        return self._copyValues(model)


def write_index(vectors: np.ndarray, ids: np.ndarray) -> str:
    """The index as one ``.npz`` file in this process's scratch folder, named by its content."""
    from .._scratch import scratch_folder

    path = os.path.join(scratch_folder(), f"index-{os.getpid()}-{id(vectors)}.npz")
    np.savez(path, vectors=vectors, ids=ids)
    return digest_named_copy(path, file_digest(path))


@dataclass(frozen=True)
class _Lookup:
    """What an executor needs to search: the shipped file, its digest, the metric and k."""

    name: str
    digest: str
    fallback: str
    metric: str
    k: int


def _load(name: str, digest: str, fallback: str) -> tuple[np.ndarray, np.ndarray]:
    """The index's vectors and ids, read at most once per Python worker."""
    if digest not in _LOADED:
        with np.load(shipped_path(name, fallback) if name else fallback, allow_pickle=False) as data:
            _LOADED.clear()  # one index at a time: they are large
            _LOADED[digest] = (data["vectors"], data["ids"])
    return _LOADED[digest]


class VectorIndexModel(Model, _IndexParams, ModelFileStage):
    """A fitted ``VectorIndex``: ``search`` in-process, ``transform`` on Spark, ``save``/``load``
    to any Hadoop URI with the index file."""

    indexFile = Param(Params._dummy(), "indexFile", "the .npz file of vectors and ids",
                      typeConverter=TypeConverters.toString)
    file_params = ("indexFile",)
    _parameter_constraints = {"indexFile": STRING}

    @keyword_only
    def __init__(self, *, indexFile=None, featuresCol="features", idCol="path", metric="cosine", k=3,
                 outputCol="neighbors"):
        super().__init__()
        self._setDefault(featuresCol="features", idCol="path", metric="cosine", k=3, outputCol="neighbors")
        self._set(**self._input_kwargs)

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        path = self.getOrDefault(self.indexFile)
        return _load("", _digest(path), path)

    @property
    def num_vectors(self) -> int:
        return len(self._arrays()[1])

    def search(self, vectors, k: int | None = None) -> list[list[tuple[object, float]]]:
        """The ``k`` nearest entries ``(id, distance)`` of each vector, nearest first (in-process)."""
        items, ids = self._arrays()
        queries = np.asarray(vectors, dtype=np.float32)
        queries = queries.reshape(1, -1) if queries.ndim == 1 else queries
        if queries.shape[1:] != items.shape[1:]:
            raise ValueError(f"VectorIndexModel.search: vectors of {queries.shape[-1]} values; the index holds "
                             f"{items.shape[1]}. Search with features from the same network.")
        return _answers(queries, items, ids, k or self.getOrDefault(self.k), self.getOrDefault(self.metric))

    def _lookup(self, spark: SparkSession, k: int | None = None) -> _Lookup:
        path = self.getOrDefault(self.indexFile)
        return _Lookup(ship_file(spark, path, "An index file"), _digest(path), path,
                       self.getOrDefault(self.metric), k or self.getOrDefault(self.k))

    def _transform(self, dataset: DataFrame) -> DataFrame:
        column = self.getFeaturesCol()
        if column not in dataset.columns:
            raise ValueError(f"VectorIndexModel: column {column!r} is not in the DataFrame (columns: "
                             f"{dataset.columns}). Set featuresCol.")
        if self.getOutputCol() in dataset.columns:
            raise ValueError(f"VectorIndexModel: output column {self.getOutputCol()!r} already exists; set outputCol.")
        udf = _search_udf(self._lookup(dataset.sparkSession), self._id_type())
        return dataset.withColumn(self.getOutputCol(), udf(F.col(column)))

    def _id_type(self) -> DataType:
        ids = self._arrays()[1]
        return from_arrow_type(pa.array(ids[:1].tolist()).type if len(ids) else pa.string())


def neighbours_type(id_type: DataType) -> ArrayType:
    return ArrayType(StructType([StructField("id", id_type, True), StructField("distance", DoubleType(), True)]))


def _answers(queries: np.ndarray, items: np.ndarray, ids: np.ndarray, k: int, metric: str) -> list[list[tuple]]:
    query_rows, item_rows, found = nearest_rows(queries, items, ids, k, metric)
    answers: list[list[tuple]] = [[] for _ in range(len(queries))]
    for query, item, distance in zip(query_rows, item_rows, found):
        answers[query].append((ids[item].item(), float(distance)))
    return answers


def _search_compute(batches: Iterator[pa.RecordBatch], lookup: _Lookup, id_type: pa.DataType) -> Iterator[list[pa.Array]]:
    items, ids = _load(lookup.name, lookup.digest, lookup.fallback)
    kind = pa.list_(pa.struct([("id", id_type), ("distance", pa.float64())]))
    for batch in batches:
        array = batch.column(0)
        valid = valid_rows([array])
        complete = array.filter(pa.array(valid)) if valid is not None else array
        answers = _answers(column_to_numpy(complete, "features").astype(np.float32).reshape(len(complete), -1),
                           items, ids, lookup.k, lookup.metric) if len(complete) else []
        cells = iter([[{"id": item, "distance": distance} for item, distance in answer] for answer in answers])
        rows = [next(cells) if valid is None or valid[row] else None for row in range(batch.num_rows)]
        yield [pa.array(rows, kind)]


def _search_udf(lookup: _Lookup, id_type: DataType):
    compute = functools.partial(_search_compute, lookup=lookup, id_type=to_arrow_type(id_type))
    return column_udf(compute, ["features"], [OutputColumn("neighbors", neighbours_type(id_type))])


def register_index(spark: SparkSession, index: VectorIndexModel | str, name: str = "nearest") -> None:
    """Register the SQL function ``name(features, k)``: the ``k`` nearest entries of ``index``
    (a fitted ``VectorIndexModel``, or the path it was saved to) as an array of ``(id, distance)``.

    ``k`` is any positive number, usually a constant; each batch of rows is searched once with
    the largest ``k`` it asks for, and each row keeps its own first ``k``.

    Examples
    --------
    >>> import deepframes
    >>> spark = deepframes.session("local[2]")
    >>> items = spark.createDataFrame([("a", [1.0, 0.0]), ("b", [0.0, 1.0])], "id string, features array<double>")
    >>> register_index(spark, VectorIndex(idCol="id").fit(items))
    >>> spark.sql("SELECT nearest(array(0.1D, 0.9D), 1)[0].id AS id").first().id
    'b'
    """
    if isinstance(index, str):
        index = VectorIndexModel.load(index)
    lookup = index._lookup(spark)
    id_type = index._id_type()
    compute = functools.partial(_nearest_compute, lookup=lookup, id_type=to_arrow_type(id_type))
    spark.udf.register(name, column_udf(compute, ["features", "k"], [OutputColumn(name, neighbours_type(id_type))]))


def _nearest_compute(batches: Iterator[pa.RecordBatch], lookup: _Lookup, id_type: pa.DataType) -> Iterator[list[pa.Array]]:
    """``nearest(features, k)``: the search with the batch's largest ``k``, each row cut to its own."""
    for batch in batches:
        wanted = [int(value) if value is not None else 0 for value in batch.column(1).to_pylist()]
        check_value("nearest(features, k)", "k", min(wanted, default=1), integer(1))
        widest = replace(lookup, k=max(wanted, default=1))
        (column,) = next(_search_compute(iter([batch.select([0])]), widest, id_type))
        yield [pa.array([None if cell is None else cell[:k] for cell, k in zip(column.to_pylist(), wanted)],
                        column.type)]


__all__ = ["VectorIndex", "VectorIndexModel", "register_index"]
