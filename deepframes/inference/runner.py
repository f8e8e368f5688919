"""Batch inference on executors: Arrow batches in, model outputs out, the next batch prepared
while the model runs the current one.

``infer_batches`` is the body of a scalar-iterator Arrow UDF, so only the input columns travel to
Python; rows carry over between Arrow batches so every model batch has ``batch_size`` rows (the
last of a partition may have fewer).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..blocks.arrays import (
    OutputSpec,
    arrow_type,
    block_to_arrow,
    column_to_numpy,
    scatter_rows,
    valid_rows,
)
from ..blocks.execution import rebatch
from .model_spec import ModelSpec
from .preprocess import ImagePreset, is_encoded_files, is_image_struct


@dataclass(frozen=True)
class InputBinding:
    """A DataFrame column feeding a model input; images are prepared with ``preset``."""

    column: str
    input_name: str
    shape: tuple[int, ...] | None = None  # recorded on the column
    preset: ImagePreset | None = None


@dataclass(frozen=True)
class OutputBinding:
    """A model output written to a DataFrame column."""

    output_name: str
    spec: OutputSpec  # spec.name is the column


@dataclass(frozen=True)
class TopK:
    """Turn a probability output into the ``k`` best ``(label, probability)`` pairs, or into the
    best label alone (``label_only``, for SQL)."""

    k: int
    labels: tuple[str, ...]
    label_only: bool = False


@dataclass(frozen=True)
class LinearHead:
    """A fitted linear classifier (MLlib logistic regression or linear SVM) applied to features:
    ``scores = features @ coefficients.T + intercepts``; the best score's label wins."""

    coefficients: np.ndarray  # (classes, features), or (1, features) for a binary model
    intercepts: np.ndarray
    labels: tuple[str, ...]

    def predict(self, features: np.ndarray) -> pa.Array:
        flat = features.reshape(len(features), -1).astype(np.float64)
        scores = flat @ self.coefficients.T + self.intercepts
        best = (scores[:, 0] > 0).astype(int) if scores.shape[1] == 1 else scores.argmax(axis=1)
        return pa.array([self.labels[index] if index < len(self.labels) else str(index) for index in best],
                        pa.string())


@dataclass(frozen=True)
class InferencePlan:
    model: ModelSpec
    inputs: tuple[InputBinding, ...]
    outputs: tuple[OutputBinding, ...]
    batch_size: int
    top_k: TopK | None = None
    head: LinearHead | None = None

    @property
    def output_arrow_type(self) -> pa.DataType | None:
        """The Arrow type every output has after post-processing (None: each its own)."""
        if self.head is not None or (self.top_k is not None and self.top_k.label_only):
            return pa.string()
        return PREDICTION_TYPE if self.top_k is not None else None


PREDICTION_TYPE = pa.list_(pa.struct([("label", pa.string()), ("probability", pa.float64())]))


@dataclass
class PreparedBatch:
    feeds: dict[str, np.ndarray]
    valid: np.ndarray | None
    num_rows: int


def prepare(batch: pa.RecordBatch, plan: InferencePlan) -> PreparedBatch:
    """Decode and lay out one batch of input columns for the model.

    Rows with a null input, or an image file that cannot be decoded, are left out (their outputs
    are null).
    """
    arrays = [batch.column(index) for index in range(len(plan.inputs))]
    valid = valid_rows(arrays)
    if valid is not None:
        keep = pa.array(valid)
        arrays = [array.filter(keep) for array in arrays]
    feeds, decoded = {}, None
    for binding, array in zip(plan.inputs, arrays):
        if binding.preset is None:
            feeds[binding.input_name] = column_to_numpy(array, binding.column, binding.shape)
        elif is_image_struct(array.type):
            feeds[binding.input_name] = binding.preset.batch_from_structs(array)
        elif is_encoded_files(array.type):
            feeds[binding.input_name], ok = binding.preset.batch_from_files(array, binding.column)
            decoded = ok if decoded is None else decoded & ok
        else:
            raise TypeError(
                f"Column {binding.column!r} must be an image struct (read_images) or encoded image "
                f"files (binary); it is {array.type}."
            )
    if decoded is not None and not decoded.all():
        feeds = {name: values[decoded] for name, values in feeds.items()}
        valid = _narrow(valid, decoded, batch.num_rows)
    return PreparedBatch(feeds, valid, batch.num_rows if valid is None else int(valid.sum()))


def _narrow(valid: np.ndarray | None, kept: np.ndarray, num_rows: int) -> np.ndarray:
    """The row mask after dropping more rows: ``kept`` is a mask over the rows ``valid`` kept."""
    narrowed = np.ones(num_rows, dtype=bool) if valid is None else valid.copy()
    narrowed[narrowed] = kept
    return narrowed


def top_k_array(probabilities: np.ndarray, top_k: TopK) -> pa.Array:
    """The k most probable labels per row, as ``array<struct<label, probability>>``."""
    k = min(top_k.k, probabilities.shape[1])
    best = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    if top_k.label_only:
        return pa.array([top_k.labels[order[0]] if order[0] < len(top_k.labels) else str(order[0])
                         for order in best], pa.string())
    rows = [
        [{"label": top_k.labels[index] if index < len(top_k.labels) else str(index),
          "probability": float(row[index])} for index in order]
        for row, order in zip(probabilities, best)
    ]
    return pa.array(rows, type=PREDICTION_TYPE)


def run_prepared(prepared: PreparedBatch, plan: InferencePlan, total_rows: int | None = None) -> list[pa.Array]:
    """Run the model on a prepared batch; outputs put back in row order with nulls where needed."""
    total = prepared.num_rows if total_rows is None else total_rows
    if prepared.num_rows == 0:
        return [pa.nulls(total, plan.output_arrow_type or arrow_type(b.spec.spark_type)) for b in plan.outputs]
    results = plan.model.load().run(prepared.feeds)
    columns = []
    for binding in plan.outputs:
        values = np.asarray(results[binding.output_name])
        if values.shape[0] != prepared.num_rows:
            raise ValueError(
                f"Model output {binding.output_name!r} has {values.shape[0]} rows for a batch of "
                f"{prepared.num_rows}; the model must keep the batch as its first dimension."
            )
        if plan.head is not None:
            array = plan.head.predict(values)
        elif plan.top_k is not None:
            array = top_k_array(values, plan.top_k)
        else:
            array = block_to_arrow(binding.spec.check(values, declared=False, fix=_OUTPUT_FIX), binding.spec)
        columns.append(scatter_rows(array, prepared.valid))
    return columns


_OUTPUT_FIX = ("The column's type was read off the model's output for the first row before the job; the model "
               "must give every batch that dtype and shape (besides the batch dimension).")


def _as_record_batches(batches: Iterator, names: Sequence[str]) -> Iterator[pa.RecordBatch]:
    for arrays in batches:
        arrays = [arrays] if isinstance(arrays, (pa.Array, pa.ChunkedArray)) else list(arrays)
        yield pa.RecordBatch.from_arrays(arrays, names=list(names))


def infer_batches(batches: Iterator, plan: InferencePlan) -> Iterator[pa.Array]:
    """Scalar-iterator Arrow UDF body: one output array (a struct for several) per model batch."""
    names = [binding.column for binding in plan.inputs]
    blocks = rebatch(_as_record_batches(batches, names), plan.batch_size)
    plan.model.load()  # load before the first batch is decoded, not in the prefetch thread
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="deepframes-prefetch") as pool:
        pending = None
        for block in blocks:
            upcoming = (pool.submit(prepare, block, plan), block.num_rows)
            if pending is not None:
                yield _pack(run_prepared(pending[0].result(), plan, pending[1]), plan)
            pending = upcoming
        if pending is not None:
            yield _pack(run_prepared(pending[0].result(), plan, pending[1]), plan)


def _pack(columns: list[pa.Array], plan: InferencePlan) -> pa.Array:
    if len(columns) == 1:
        return columns[0]
    return pa.StructArray.from_arrays(columns, names=[binding.spec.name for binding in plan.outputs])
