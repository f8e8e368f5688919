"""What runs on the executors (and, for pandas input, locally): blocks in, columns out.

Every entry point here is a top-level function of Arrow batches and a small frozen plan, so
Spark ships only the plan; the user's function inside it is loaded once per Python worker.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..core.arrays import (
    OutputSpec,
    arrow_type,
    block_from_arrays,
    block_to_arrow,
    cell_to_numpy,
    cells_to_arrow,
    UnequalCellsError,
    scatter_rows,
    valid_rows,
)
from ..core.batching import rebatch
from ..core.results import ExecutorError, result_bytes, results_of
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


def map_blocks_compute(batches: Iterator[pa.RecordBatch], plan: BlockPlan) -> Iterator[list[pa.Array]]:
    """The executor body of ``map_blocks``/``map_rows`` (``core.udf``'s ``compute``): input
    batches re-cut to ``plan.block_size`` rows, the function's output columns per block."""
    for block in rebatch(batches, plan.block_size):
        yield map_block(block, plan)


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


def _payload_batch(payload: object) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([result_bytes(payload)], pa.binary())], names=["partial"])


def reduce_record_batches(batches: Iterator[pa.RecordBatch], plan: BlockPlan) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` entry point: at most one pickled partial result per partition.

    Our own errors (a function that raised, cells of unequal shapes) travel back as the pickled
    exception itself, so the driver raises exactly it instead of reading Spark's error text.
    """
    reduce = reduce_rows_local if plan.by_row else reduce_blocks_local
    try:
        partial = reduce(batches, plan)
    except (BlockFunctionError, UnequalCellsError) as error:
        yield _payload_batch(ExecutorError(error))
        return
    if partial is not None:
        yield _payload_batch(partial)


def partial_results(payloads: Sequence[bytes]) -> list[dict[str, np.ndarray]]:
    """Unpickle the partitions' partial results; raise the first executor error among them."""
    return results_of(payloads)


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
