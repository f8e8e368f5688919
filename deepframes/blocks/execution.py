"""What runs on the executors (and, for pandas input, locally): blocks in, columns out.

Every entry point here is a top-level function of Arrow batches and a small frozen plan, so
Spark ships only the plan; the user's function inside it is loaded once per Python worker.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .arrays import (
    OutputSpec,
    arrow_type,
    block_from_arrays,
    block_to_arrow,
    cell_to_numpy,
    cells_to_arrow,
    scatter_rows,
    valid_rows,
)
from .functions import BlockFunction, BlockFunctionError

# Partial results combined at once while reducing a partition; bounds driver and worker memory.
_MAX_PENDING_PARTIALS = 64


@dataclass(frozen=True)
class BlockPlan:
    """A block operation as shipped to executors."""

    function: BlockFunction
    columns: tuple[str, ...]
    shapes: tuple[tuple[int, ...] | None, ...]
    outputs: tuple[OutputSpec, ...] = ()
    declared: bool = False
    block_size: int | None = None
    trim: bool = False
    by_row: bool = False

    @property
    def shape_of(self) -> dict[str, tuple[int, ...] | None]:
        return dict(zip(self.columns, self.shapes))


def rebatch(batches: Iterator[pa.RecordBatch], block_size: int | None) -> Iterator[pa.RecordBatch]:
    """Blocks of exactly ``block_size`` rows (the last may be shorter), carrying rows over
    from one Arrow batch to the next; without a block size, the batches as they come."""
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


def _arrays(batch: pa.RecordBatch, plan: BlockPlan) -> dict[str, pa.Array]:
    return {name: batch.column(index) for index, name in enumerate(plan.columns)}


def _where(batch: pa.RecordBatch) -> str:
    from pyspark import TaskContext

    context = TaskContext.get()
    place = f" of partition {context.partitionId()}" if context else ""
    return f"a block of {batch.num_rows} rows{place}"


def _check_keys(result: dict, plan: BlockPlan, where: str) -> None:
    missing = [spec.name for spec in plan.outputs if spec.name not in result]
    if missing:
        raise BlockFunctionError(
            f"{plan.function.operation}: function {plan.function.name!r} did not return "
            f"{missing}; it returned {sorted(result)} (on {where}). Every block must return the "
            "same columns."
        )


def check_row_count(plan: BlockPlan, name: str, values: np.ndarray, num_rows: int, where: str) -> None:
    """Unless trimming, a block function returns exactly one output row per input row."""
    if not plan.trim and (values.ndim == 0 or values.shape[0] != num_rows):
        received = "a single value" if values.ndim == 0 else f"{values.shape[0]} rows"
        raise BlockFunctionError(
            f"map_blocks: function {plan.function.name!r} returned {received} for {name!r} from a "
            f"block of {num_rows} rows (on {where}). Return one row per input row, or pass "
            "trim=True to replace the DataFrame with the function's rows."
        )


def map_block(batch: pa.RecordBatch, plan: BlockPlan) -> list[pa.Array]:
    where = _where(batch)
    if plan.by_row:
        return _map_rows_block(batch, plan, where)
    block, valid = block_from_arrays(_arrays(batch, plan), plan.shape_of)
    num_rows = batch.num_rows if valid is None else int(valid.sum())
    if num_rows == 0:
        length = 0 if plan.trim else batch.num_rows
        return [pa.nulls(length, arrow_type(spec.spark_type)) for spec in plan.outputs]
    result = plan.function.call(block, where=where)
    _check_keys(result, plan, where)
    columns = []
    for spec in plan.outputs:
        values = spec.check(result[spec.name], plan.declared)
        check_row_count(plan, spec.name, values, num_rows, where)
        array = block_to_arrow(values, spec)
        columns.append(array if plan.trim else scatter_rows(array, valid))
    if plan.trim and len({len(column) for column in columns}) > 1:
        raise BlockFunctionError(
            f"map_blocks: function {plan.function.name!r} returned columns of different lengths "
            f"{ {spec.name: len(c) for spec, c in zip(plan.outputs, columns)} } ({where})."
        )
    return columns


def row_values(batch: pa.RecordBatch, plan: BlockPlan) -> Iterator[tuple[int, dict]]:
    arrays = _arrays(batch, plan)
    valid = valid_rows(list(arrays.values()))
    shapes = plan.shape_of
    for index in range(batch.num_rows):
        if valid is None or valid[index]:
            yield index, {name: cell_to_numpy(array, index, name, shapes[name]) for name, array in arrays.items()}


def _map_rows_block(batch: pa.RecordBatch, plan: BlockPlan, where: str) -> list[pa.Array]:
    cells: dict[str, list] = {spec.name: [] for spec in plan.outputs}
    for index, row in row_values(batch, plan):
        result = plan.function.call(row, where=f"row {index} of {where}")
        _check_keys(result, plan, where)
        for spec in plan.outputs:
            value = spec.check(np.asarray(result[spec.name])[np.newaxis], plan.declared)[0]
            cells[spec.name].append(value)
    if plan.trim:
        return [cells_to_arrow(cells[spec.name], spec) for spec in plan.outputs]
    valid = valid_rows(list(_arrays(batch, plan).values()))
    return [scatter_rows(cells_to_arrow(cells[spec.name], spec), valid) for spec in plan.outputs]


def map_record_batches(batches: Iterator[pa.RecordBatch], plan: BlockPlan) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` entry point: input columns in, output columns out (row count may change)."""
    names = [spec.name for spec in plan.outputs]
    for block in rebatch(batches, plan.block_size):
        yield pa.RecordBatch.from_arrays(map_block(block, plan), names=names)


def map_column_batches(batches: Iterator, plan: BlockPlan) -> Iterator[pa.Array]:
    """Scalar-iterator Arrow UDF entry point: one output array (a struct for several outputs)
    per block; the total row count equals the input's."""
    def as_record_batches() -> Iterator[pa.RecordBatch]:
        for arrays in batches:
            arrays = [arrays] if isinstance(arrays, (pa.Array, pa.ChunkedArray)) else list(arrays)
            yield pa.RecordBatch.from_arrays(arrays, names=list(plan.columns))

    for block in rebatch(as_record_batches(), plan.block_size):
        columns = map_block(block, plan)
        if len(columns) == 1:
            yield columns[0]
        else:
            yield pa.StructArray.from_arrays(columns, names=[spec.name for spec in plan.outputs])


# ---- reductions ----------------------------------------------------------------------------


def _combine(partials: list[dict[str, np.ndarray]], plan: BlockPlan, where: str) -> dict[str, np.ndarray]:
    if len(partials) == 1:
        return partials[0]
    stacked = {name: np.stack([partial[name] for partial in partials]) for name in plan.columns}
    return _reduced(plan.function.call(stacked, where=f"the partial results of {where}"), plan, where)


def _reduced(result: dict, plan: BlockPlan, where: str) -> dict[str, np.ndarray]:
    if set(result) != set(plan.columns):
        raise BlockFunctionError(
            f"reduce_blocks: function {plan.function.name!r} must return one value for each column "
            f"it reduces, {sorted(plan.columns)}, because partial results are combined by calling "
            f"it again on them. It returned {sorted(result)} (on {where})."
        )
    return result


def reduce_blocks_local(batches: Iterator[pa.RecordBatch], plan: BlockPlan) -> dict[str, np.ndarray] | None:
    """Reduce batches to one partial result (None when there were no complete rows)."""
    partials: list[dict[str, np.ndarray]] = []
    where = "a block"
    for batch in rebatch(batches, plan.block_size):
        where = _where(batch)
        block, valid = block_from_arrays(_arrays(batch, plan), plan.shape_of)
        if valid is not None and not valid.any():
            continue
        partials.append(_reduced(plan.function.call(block, where=where), plan, where))
        if len(partials) >= _MAX_PENDING_PARTIALS:
            partials = [_combine(partials, plan, where)]
    return _combine(partials, plan, where) if partials else None


def reduce_rows_local(batches: Iterator[pa.RecordBatch], plan: BlockPlan) -> dict[str, np.ndarray] | None:
    """Fold rows pairwise with ``fn(a, b)``; None when there were no complete rows."""
    total = None
    for batch in batches:
        for index, row in row_values(batch, plan):
            total = row if total is None else pair(total, row, plan, f"row {index} of {_where(batch)}")
    return total


def pair(left: dict, right: dict, plan: BlockPlan, where: str) -> dict[str, np.ndarray]:
    return _reduced(plan.function.call(left, right, where=where), plan, where)


def _partial_batch(partial: dict[str, np.ndarray] | None) -> Iterator[pa.RecordBatch]:
    if partial is not None:
        yield pa.RecordBatch.from_arrays([pa.array([pickle.dumps(partial)], pa.binary())], names=["partial"])


def reduce_record_batches(batches: Iterator[pa.RecordBatch], plan: BlockPlan) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` entry point: at most one pickled partial result per partition."""
    reduce = reduce_rows_local if plan.by_row else reduce_blocks_local
    yield from _partial_batch(reduce(batches, plan))


def finish_reduce(partials: Sequence[dict[str, np.ndarray]], plan: BlockPlan) -> dict[str, np.ndarray] | None:
    """Combine per-partition partial results on the driver."""
    if not partials:
        return None
    if plan.by_row:
        total = partials[0]
        for index, partial in enumerate(partials[1:], start=1):
            total = pair(total, partial, plan, f"the results of partitions 0..{index}")
        return total
    result = list(partials)
    while len(result) > 1:
        result = [
            _combine(result[start:start + _MAX_PENDING_PARTIALS], plan, "the partitions' results")
            for start in range(0, len(result), _MAX_PENDING_PARTIALS)
        ]
    return result[0]
