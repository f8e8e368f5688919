"""Data for block tests: the classic 10-float column and a column in slices of unequal sizes."""

from __future__ import annotations

import numpy as np
import pytest

SLICE_SIZES = (1, 7, 120, 3, 0, 500, 369)


@pytest.fixture
def ten_floats(spark):
    """TensorFrames' README example: x = 0.0 .. 9.0, in 3 partitions."""
    return spark.createDataFrame([(float(x),) for x in range(10)], "x double").repartition(3)


def sliced_frame(spark, values: np.ndarray):
    """One partition per slice, slices of very unequal sizes (one of them empty)."""
    bounds = np.cumsum((0,) + SLICE_SIZES)
    slices = [[(float(v), 1.0) for v in values[start:end]] for start, end in zip(bounds, bounds[1:])]
    rdd = spark.sparkContext.parallelize(slices, len(slices)).flatMap(lambda rows: rows)
    return spark.createDataFrame(rdd, "x double, w double")


@pytest.fixture
def column_values() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.lognormal(mean=3.0, sigma=2.0, size=sum(SLICE_SIZES))
