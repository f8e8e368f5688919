"""The first rows of a DataFrame as executors see them in Arrow, read on the driver."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pyarrow as pa
from pyspark.sql import DataFrame

# Rows read on the driver to infer output schemas: never a full pass.
SAMPLE_ROWS = 16


def _first_rows_as_ipc(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """A partition's first SAMPLE_ROWS rows as one Arrow IPC blob; reads no further."""
    taken, rows = [], 0
    for batch in batches:
        taken.append(batch.slice(0, SAMPLE_ROWS - rows))
        rows += taken[-1].num_rows
        if rows >= SAMPLE_ROWS:
            break
    if rows:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, taken[0].schema) as writer:
            for batch in taken:
                writer.write_batch(batch)
        yield pa.RecordBatch.from_arrays([pa.array([sink.getvalue().to_pybytes()])], names=["ipc"])


def sample(df: DataFrame, columns: Sequence[str]) -> pa.Table:
    """The first rows of ``columns`` exactly as executors see them in Arrow, read on the driver.

    The limit comes after the Arrow conversion, so Spark computes only as many partitions as it
    needs to find rows (no full pass, and no shuffle of the whole DataFrame into one task).
    """
    rows = df.select(*columns).mapInArrow(_first_rows_as_ipc, "ipc binary").limit(1).collect()
    batches = [batch for row in rows for batch in pa.ipc.open_stream(row.ipc)]
    if not batches:
        return pa.table({name: pa.array([], pa.null()) for name in columns})
    return pa.Table.from_batches(batches)
