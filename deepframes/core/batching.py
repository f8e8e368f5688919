"""Batches of exactly the size asked for, and the next batch prepared while the current one runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pyarrow as pa

Item = TypeVar("Item")
Prepared = TypeVar("Prepared")


def rebatch(batches: Iterator[pa.RecordBatch], block_size: int | None) -> Iterator[pa.RecordBatch]:
    """Blocks of exactly ``block_size`` rows (the last may be shorter), carrying rows over
    from one Arrow batch to the next; without a block size, the batches as they come.

    >>> batches = iter([pa.record_batch({"x": list(range(5))}), pa.record_batch({"x": [5, 6]})])
    >>> [block.num_rows for block in rebatch(batches, 3)]
    [3, 3, 1]
    """
    if block_size is None:
        yield from batches
        return
    pending: list[pa.RecordBatch] = []
    num_pending = 0
    for batch in batches:
        pending.append(batch)
        num_pending += batch.num_rows
        if num_pending < block_size:
            continue
        table = pa.Table.from_batches(pending).combine_chunks()
        offset = 0
        while num_pending - offset >= block_size:
            yield table.slice(offset, block_size).to_batches()[0]
            offset += block_size
        rest = table.slice(offset)
        pending, num_pending = rest.to_batches(), rest.num_rows
    if num_pending:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]


def prefetched(items: Iterator[Item], prepare: Callable[[Item], Prepared]) -> Iterator[tuple[Item, Prepared]]:
    """``(item, prepare(item))`` pairs, preparing the next item in a thread while the caller
    works on the current one (decoding overlaps the model; NumPy, Pillow and ONNX Runtime release
    the GIL). At most two items are held at once.

    >>> [prepared for _, prepared in prefetched(iter([1, 2, 3]), lambda x: x * 10)]
    [10, 20, 30]
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="deepframes-prefetch") as pool:
        pending = None
        for item in items:
            upcoming = (item, pool.submit(prepare, item))
            if pending is not None:
                yield pending[0], pending[1].result()
            pending = upcoming
        if pending is not None:
            yield pending[0], pending[1].result()
