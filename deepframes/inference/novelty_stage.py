"""``NoveltyDetector``: the out-of-distribution test (``novelty.py``) as a pyspark.ml stage, so it
is fitted, saved and loaded with the pipeline it guards.

In a fitted pipeline it sits after the ``ImageFeaturizer``; the pipeline interpreter
(``pipeline.py``) finds it there, so SQL functions, ``predict``, the web service and
``PipelineFunction`` all answer "not recognised" the same way. Its statistics live in a file
(``novelty.npz``) that ``save`` copies under the stage's folder; its Params are plain values.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
from pyspark import keyword_only
from pyspark.ml import Estimator, Model
from pyspark.ml.functions import vector_to_array
from pyspark.ml.linalg import VectorUDT
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasFeaturesCol, HasLabelCol, HasOutputCol, HasSeed
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType

from .._scratch import scratch_folder
from ..core.arrays import column_to_numpy
from ..core.params import STRING, ValidatedParams, integer, real
from ..core.persistence import ModelFileStage
from ..core.udf import OutputColumn, append_columns
from .novelty import DEFAULT_REJECT_THRESHOLD, NoveltyTest, fit_novelty_test
from .stage import check_input_columns

logger = logging.getLogger(__name__)


class _NoveltyParams(ValidatedParams, HasFeaturesCol, HasOutputCol):
    rejectThreshold = Param(
        Params._dummy(), "rejectThreshold",
        "photos less typical than this share of held-out training photos are not recognised; in [0, 1), 0: off",
        typeConverter=TypeConverters.toFloat)
    _parameter_constraints = {"rejectThreshold": real(0, 1, closed="left")}

    def getRejectThreshold(self) -> float:
        return self.getOrDefault(self.rejectThreshold)

    def setRejectThreshold(self, value: float):
        return self._set(rejectThreshold=value)


class NoveltyDetector(Estimator, _NoveltyParams, HasLabelCol, HasSeed):
    """Fits an out-of-distribution test on labelled features: the ``NoveltyModel`` that tells
    which photos are not like any class it was trained on.

    Fitting collects the features and labels to the driver (a 512-feature row is 2 KB: 100,000
    photos are 200 MB) and calibrates by ``numFolds``-fold cross-validation.

    Parameters
    ----------
    featuresCol : str
        ML vectors or arrays of numbers (an ``ImageFeaturizer``'s output).
    labelCol : str
    outputCol : str
        The typicality column the fitted model appends (double in (0, 1]).
    rejectThreshold : float
        In [0, 1): photos less typical than this share of held-out training photos are not
        recognised (0.01: about 1% of photos like the training ones; 0: none).
    numFolds : int
    seed : int

    Examples
    --------
    >>> import deepframes, numpy as np
    >>> from pyspark.ml.linalg import Vectors
    >>> spark = deepframes.session("local[2]")
    >>> rng = np.random.default_rng(0)
    >>> rows = [(Vectors.dense(rng.normal(0, 1, 4) + 5 * np.eye(4)[k % 2]), "ab"[k % 2]) for k in range(240)]
    >>> model = NoveltyDetector().fit(spark.createDataFrame(rows, ["features", "label"]))
    >>> far = spark.createDataFrame([(Vectors.dense([-5.0, 0, 0, 0]),)], ["features"])
    >>> model.transform(far).first().typicality < model.getRejectThreshold()
    True
    """

    numFolds = Param(Params._dummy(), "numFolds", "cross-validation folds calibrating the test",
                     typeConverter=TypeConverters.toInt)
    _parameter_constraints = {"numFolds": integer(2)}

    @keyword_only
    def __init__(self, *, featuresCol="features", labelCol="label", outputCol="typicality",
                 rejectThreshold=DEFAULT_REJECT_THRESHOLD, numFolds=5, seed=0):
        super().__init__()
        self._setDefault(featuresCol="features", labelCol="label", outputCol="typicality",
                         rejectThreshold=DEFAULT_REJECT_THRESHOLD, numFolds=5, seed=0)
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, featuresCol="features", labelCol="label", outputCol="typicality",
                  rejectThreshold=DEFAULT_REJECT_THRESHOLD, numFolds=5, seed=0):
        return self._set(**self._input_kwargs)

    def _fit(self, dataset: DataFrame) -> NoveltyModel:
        features, label = self.getFeaturesCol(), self.getLabelCol()
        check_input_columns(dataset, [features, label], "NoveltyDetector")
        column = F.col(features)
        if isinstance(dataset.schema[features].dataType, VectorUDT):
            column = vector_to_array(column)
        table = (dataset.where(F.col(features).isNotNull() & F.col(label).isNotNull())
                 .select(column.alias("features"), F.col(label).cast("string").alias("label")).toArrow())
        matrix = column_to_numpy(table.column("features"), features)
        test = fit_novelty_test(matrix, table.column("label").to_pylist(), num_folds=self.getOrDefault(self.numFolds),
                                reject_threshold=self.getRejectThreshold(), seed=self.getSeed())
        lowest = 1.0 / (1 + len(test.calibration))  # the typicality of a photo farther than all of them
        if 0 < self.getRejectThreshold() < lowest:
            logger.warning("rejectThreshold %g is below %.3g, the lowest typicality %d held-out training rows can "
                           "give: no row will be rejected. Fit on %d rows or more, or raise the threshold to %.3g.",
                           self.getRejectThreshold(), lowest, len(test.calibration),
                           int(np.ceil(1 / self.getRejectThreshold())), lowest)
        path = os.path.join(scratch_folder(), "novelty.npz")  # save copies it into the stage's folder
        np.savez(path, **test.to_arrays())
        return NoveltyModel(featuresCol=features, outputCol=self.getOutputCol(),
                            rejectThreshold=self.getRejectThreshold(), statistics=path)


def _typicality_compute(batches: Iterator[pa.RecordBatch], test: NoveltyTest, column: str) -> Iterator[list[pa.Array]]:
    for batch in batches:
        values = batch.column(0)
        valid = values.is_valid().to_numpy(zero_copy_only=False)
        typicality = np.full(len(values), np.nan)
        if valid.any():
            typicality[valid] = test.typicality(column_to_numpy(values.filter(pa.array(valid)), column))
        yield [pa.array(typicality, pa.float64(), mask=~valid)]


class NoveltyModel(Model, _NoveltyParams, ModelFileStage):
    """A fitted ``NoveltyDetector``: appends each row's typicality (``outputCol``); rows below
    ``rejectThreshold`` are not recognised. Change the threshold with ``setRejectThreshold``
    (no refit: the calibration is kept whole). ``statistics`` is the file of the fitted test
    (``NoveltyTest.to_arrays``), ``test_`` the test read from it."""

    statistics = Param(Params._dummy(), "statistics", "the fitted test's statistics (.npz)",
                       typeConverter=TypeConverters.toString)
    file_params = ("statistics",)
    _parameter_constraints = {"statistics": STRING}

    @keyword_only
    def __init__(self, *, featuresCol="features", outputCol="typicality", rejectThreshold=DEFAULT_REJECT_THRESHOLD,
                 statistics=None):
        super().__init__()
        self._setDefault(featuresCol="features", outputCol="typicality", rejectThreshold=DEFAULT_REJECT_THRESHOLD)
        self._set(**self._input_kwargs)

    @property
    def test_(self) -> NoveltyTest:
        path = self.getOrDefault(self.statistics)
        cached = getattr(self, "_test_read", None)
        if cached is None or cached[0] != path:
            with np.load(path) as arrays:
                cached = (path, NoveltyTest.from_arrays(arrays))
            self._test_read = cached
        return cached[1]

    def novelty_test(self) -> NoveltyTest:
        """The fitted test with this stage's ``rejectThreshold``."""
        return self.test_.with_reject_threshold(self.getRejectThreshold())

    def _transform(self, dataset: DataFrame) -> DataFrame:
        column = self.getFeaturesCol()
        check_input_columns(dataset, [column], "NoveltyModel")
        source, read_from = dataset, column
        if isinstance(dataset.schema[column].dataType, VectorUDT):  # Arrow UDFs take arrays, not vectors
            read_from = "__deepframes_novelty_features"
            source = dataset.withColumn(read_from, F.when(F.col(column).isNull(), None)
                                        .otherwise(vector_to_array(column)))
        compute = functools.partial(_typicality_compute, test=self.novelty_test(), column=column)
        appended = append_columns(source, compute, [read_from], [OutputColumn(self.getOutputCol(), DoubleType())],
                                  operation="NoveltyModel", fix="Set outputCol to a new name")
        return appended.drop(read_from) if read_from != column else appended


__all__ = ["NoveltyDetector", "NoveltyModel"]
