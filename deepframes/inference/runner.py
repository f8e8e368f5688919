"""Batch inference on executors: Arrow batches in, model outputs out, the next batch prepared
while the model runs the current one.

``infer_compute`` is the ``compute`` of the executor core's Arrow UDF (``deepframes.core.udf``),
so only the input columns travel to Python; rows carry over between Arrow batches so every model
batch has ``batch_size`` rows (the last of a partition may have fewer). A plan may end in a
classifier head (features -> class scores) and a top-k step (scores -> labels): that is how a
whole fitted pipeline runs in one batch. A pipeline with an out-of-distribution test
(``novelty.py``) leaves the rows it does not recognise without a label (null).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql.types import ArrayType, DoubleType, StringType, StructField, StructType

from ..core.arrays import OutputSpec, arrow_type, block_to_arrow, column_to_numpy, scatter_rows, valid_rows
from ..core.batching import prefetched, rebatch
from ..core.shapes import format_shape
from ..core.udf import OutputColumn
from ..models.presets import ImagePreset, is_encoded_files, is_image_struct
from ..models.spec import ModelSpec
from ..models.text import Tokenization
from .heads import Head
from .novelty import NoveltyTest

logger = logging.getLogger(__name__)

# Where a plan with errors="column" puts the reason a row failed (the stage then merges it into
# the "error" column read_images fills).
FAILURE_COLUMN = "__deepframes_failure"
ERROR_MODES = ("column", "raise")

PREDICTION_TYPE = pa.list_(pa.struct([("label", pa.string()), ("probability", pa.float64())]))
PREDICTION_SPARK_TYPE = ArrayType(
    StructType([StructField("label", StringType(), True), StructField("probability", DoubleType(), True)])
)


class ModelMismatchError(ValueError):
    """The model does not fit its plan (labels, outputs): no row could be answered, so it fails
    the job even where failing rows are only recorded (``errors="column"``)."""


@dataclass(frozen=True)
class InputBinding:
    """A DataFrame column feeding a model input. Image columns (structs or encoded files) are
    laid out with ``preset``; a text column feeds every input ``tokenization`` makes; other
    columns are tensors shaped by ``shape`` (block shape)."""

    column: str
    input_name: str
    shape: tuple[int, ...] | None = None
    preset: ImagePreset | None = None
    model_shape: tuple[int, ...] | None = None  # what the model declares, checked on each batch
    tokenization: Tokenization | None = None

    def shipped(self, spark) -> InputBinding:
        """This binding with its tokenizer file (if any) sent to every executor."""
        return self if self.tokenization is None else replace(self, tokenization=self.tokenization.ship(spark))

    def check(self, values: np.ndarray) -> np.ndarray:
        expected = self.model_shape
        if expected is None or len(expected) <= 1 or len(values) == 0:
            return values
        received = values.shape
        if len(received) != len(expected) or any(e > 0 and e != r for r, e in zip(received[1:], expected[1:])):
            raise ValueError(
                f"Column {self.column!r} gives model input {self.input_name!r} batches of shape "
                f"{format_shape([-1, *received[1:]])}; the model expects {format_shape(expected)}. Record "
                f"the column's shape (deepframes.append_shape) or pick another input."
            )
        return values


@dataclass(frozen=True)
class OutputBinding:
    """A model output (None: the model's first) written to the column ``spec.name``."""

    output_name: str | None
    spec: OutputSpec


@dataclass(frozen=True)
class TopK:
    """Class scores -> the ``k`` best ``(label, probability)`` pairs, or the best label alone
    (``label_only``). ``probabilities`` is False for scores that are not (an SVM's margins):
    the pairs then carry a null probability."""

    k: int
    labels: tuple[str, ...]
    label_only: bool = False
    probabilities: bool = True

    def check(self, num_classes: int) -> None:
        if num_classes > len(self.labels):
            raise ModelMismatchError(
                f"The model scores {num_classes} classes but {len(self.labels)} labels were given. "
                "Give one label per class (labels=[...] or a labels file)."
            )

    def apply(self, scores: np.ndarray, recognised: np.ndarray | None = None) -> pa.Array:
        """The labels of each row; null for the rows ``recognised`` marks False."""
        self.check(scores.shape[1])
        best = np.argsort(-scores, axis=1, kind="stable")[:, :min(self.k, scores.shape[1])]
        known = np.ones(len(scores), dtype=bool) if recognised is None else recognised
        if self.label_only:
            return pa.array([self.labels[order[0]] if ok else None for order, ok in zip(best, known)], pa.string())
        rows = [
            [{"label": self.labels[index], "probability": float(row[index]) if self.probabilities else None}
             for index in order] if ok else None
            for row, order, ok in zip(scores, best, known)
        ]
        return pa.array(rows, type=PREDICTION_TYPE)


@dataclass(frozen=True)
class InferencePlan:
    """Everything an executor needs to run a model over columns: the model, how columns feed
    it, which outputs become columns, and optional steps after the model."""

    model: ModelSpec
    inputs: tuple[InputBinding, ...]
    outputs: tuple[OutputBinding, ...]
    batch_size: int
    head: Head | None = None
    top_k: TopK | None = None
    novelty: NoveltyTest | None = None  # on the head's input features: which rows get no label
    preprocess: Callable[[np.ndarray], np.ndarray] | None = None  # on each model-ready input batch
    # on each model output with the batch's feeds, before the head (mean pooling over the attention mask)
    postprocess: Callable[[np.ndarray, dict[str, np.ndarray]], np.ndarray] | None = None
    # "column": a row that fails gets null outputs and its reason in one more output column
    # (FAILURE_COLUMN) and the job goes on; None: the batch's error fails the task.
    errors: str | None = None
    failure_counter: Any = field(default=None, compare=False)  # a Spark accumulator of failed rows

    def shipped(self, spark) -> InferencePlan:
        """This plan with its model cut down to the outputs it uses and sent to every executor."""
        model = self.model.for_outputs([binding.output_name for binding in self.outputs])
        return replace(self, model=model.ship(spark), inputs=tuple(binding.shipped(spark) for binding in self.inputs))

    def output_columns(self) -> list[OutputColumn]:
        if self.top_k is not None:
            spark_type = StringType() if self.top_k.label_only else PREDICTION_SPARK_TYPE
            columns = [OutputColumn(binding.spec.name, spark_type) for binding in self.outputs]
        else:
            columns = [binding.spec.column() for binding in self.outputs]
        return columns + ([OutputColumn(FAILURE_COLUMN, StringType())] if self.errors == "column" else [])

    def _arrow_type(self, binding: OutputBinding) -> pa.DataType:
        if self.top_k is not None:
            return pa.string() if self.top_k.label_only else PREDICTION_TYPE
        return arrow_type(binding.spec.spark_type)


@dataclass
class PreparedBatch:
    feeds: dict[str, np.ndarray]
    valid: np.ndarray | None  # rows the model runs on (None: all)
    num_rows: int
    failures: dict[int, str]  # row -> why its image file could not be decoded


def _is_image(binding: InputBinding, array_type: pa.DataType) -> bool:
    return binding.preset is not None and (is_image_struct(array_type) or is_encoded_files(array_type))


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
    feeds, failures = {}, {}
    for binding, array in zip(plan.inputs, arrays):
        if binding.tokenization is not None:
            feeds.update(binding.tokenization.encode(array))
        elif not _is_image(binding, array.type):
            feeds[binding.input_name] = binding.check(column_to_numpy(array, binding.column, binding.shape))
        elif is_image_struct(array.type):
            feeds[binding.input_name] = binding.preset.batch_from_structs(array)
        else:
            feeds[binding.input_name], failed = binding.preset.batch_from_files(array, binding.column)
            if failed and plan.errors != "column":  # otherwise each reason is in the row's error column
                logger.warning("%d file(s) in column %r could not be decoded and give null outputs, e.g.: %s",
                               len(failed), binding.column, next(iter(failed.values())))
            failures.update(failed)
    if failures:
        decoded = np.ones(len(arrays[0]), dtype=bool)
        decoded[list(failures)] = False
        feeds = {name: values[decoded] for name, values in feeds.items()}
        rows = np.flatnonzero(valid) if valid is not None else np.arange(batch.num_rows)
        failures = {int(rows[index]): reason for index, reason in failures.items()}
        valid = _narrow(valid, decoded, batch.num_rows)
    if plan.preprocess is not None:
        feeds = {name: np.asarray(plan.preprocess(values)) for name, values in feeds.items()}
    return PreparedBatch(feeds, valid, batch.num_rows if valid is None else int(valid.sum()), failures)


def _narrow(valid: np.ndarray | None, kept: np.ndarray, num_rows: int) -> np.ndarray:
    """The row mask after dropping more rows: ``kept`` is a mask over the rows ``valid`` kept."""
    narrowed = np.ones(num_rows, dtype=bool) if valid is None else valid.copy()
    narrowed[narrowed] = kept
    return narrowed


def network_outputs(feeds: dict[str, np.ndarray], plan: InferencePlan, num_rows: int) -> list[np.ndarray]:
    """Run the model on one prepared batch; the plan's outputs, each with ``num_rows`` rows."""
    named = [binding.output_name for binding in plan.outputs]
    results = plan.model.load().run(feeds, outputs=None if None in named else named)
    values = []
    for binding in plan.outputs:
        name = binding.output_name or next(iter(results))
        if name not in results:
            raise ModelMismatchError(
                f"The model has no output {name!r}; its outputs are {sorted(results)}. "
                "Set outputNames to some of them."
            )
        value = np.asarray(results[name])
        if value.ndim == 0 or value.shape[0] != num_rows:
            raise ModelMismatchError(
                f"Model output {name!r} has shape {list(value.shape)} for a batch of {num_rows} rows; "
                "the model must keep the batch as its first dimension."
            )
        values.append(value)
    return values


def model_outputs(feeds: dict[str, np.ndarray], plan: InferencePlan, num_rows: int) -> list[np.ndarray]:
    """The plan's outputs after its postprocessing and head (class scores), where it has them."""
    values = network_outputs(feeds, plan, num_rows)
    if plan.postprocess is not None:
        values = [plan.postprocess(value, feeds) for value in values]
    return [plan.head.scores(value) if plan.head is not None else value for value in values]


def classify(feeds: dict[str, np.ndarray], plan: InferencePlan, num_rows: int) -> tuple[np.ndarray, np.ndarray | None]:
    """A classifying plan's ``(scores, typicality)`` for one prepared batch: class scores per row,
    and how typical each row's features are of the training photos (None without a novelty test)."""
    (features,) = network_outputs(feeds, plan, num_rows)
    return judge(features, plan)


def judge(features: np.ndarray, plan: InferencePlan) -> tuple[np.ndarray, np.ndarray | None]:
    """``classify`` from the network's features: ``(scores, typicality)``."""
    typicality = plan.novelty.typicality(features) if plan.novelty is not None else None
    return (plan.head.scores(features) if plan.head is not None else features), typicality


def run_prepared(prepared: PreparedBatch, plan: InferencePlan, total_rows: int) -> list[pa.Array]:
    """Run the model on a prepared batch; outputs put back in row order with nulls where needed."""
    if prepared.num_rows == 0:
        return [pa.nulls(total_rows, plan._arrow_type(binding)) for binding in plan.outputs]
    if plan.novelty is not None:
        scores, typicality = classify(prepared.feeds, plan, prepared.num_rows)
        recognised = plan.novelty.accepts(typicality)
        return [scatter_rows(plan.top_k.apply(scores, recognised), prepared.valid)]
    columns = []
    for binding, values in zip(plan.outputs, model_outputs(prepared.feeds, plan, prepared.num_rows)):
        if plan.top_k is not None:
            array = plan.top_k.apply(values.reshape(len(values), -1))
        else:
            try:
                checked = binding.spec.check(values, declared=True, fix=_OUTPUT_FIX)
            except (TypeError, ValueError) as error:  # the model's outputs, not the rows, changed
                raise ModelMismatchError(str(error)) from None
            array = block_to_arrow(checked, binding.spec)
        columns.append(scatter_rows(array, prepared.valid))
    return columns


_OUTPUT_FIX = ("The column's type comes from the model's signature (or its first batch); the model must give "
               "every batch that dtype and shape (besides the batch dimension).")


def infer_compute(batches: Iterator[pa.RecordBatch], plan: InferencePlan) -> Iterator[list[pa.Array]]:
    """The executor body of every inference stage: model batches of ``plan.batch_size`` rows,
    each decoded in a thread while the model runs the previous one."""
    plan.model.load()  # load before the first batch is decoded, not in the prefetch thread
    blocks = rebatch(batches, plan.batch_size)
    if plan.errors != "column":
        for block, prepared in prefetched(blocks, functools.partial(prepare, plan=plan)):
            yield run_prepared(prepared, plan, block.num_rows)
        return
    for block, prepared in prefetched(blocks, functools.partial(_prepare_or_error, plan=plan)):
        columns, reasons = _run_tolerant(block, prepared, plan)
        columns = [column if column is not None else pa.nulls(block.num_rows, plan._arrow_type(binding))
                   for column, binding in zip(columns, plan.outputs)]
        failed = sum(reason is not None for reason in reasons)
        if failed and plan.failure_counter is not None:
            plan.failure_counter.add(failed)
        yield columns + [pa.array(reasons, pa.string())]


def _prepare_or_error(block: pa.RecordBatch, plan: InferencePlan) -> PreparedBatch | Exception:
    try:
        return prepare(block, plan)
    except Exception as error:  # a row that cannot be laid out: found again row by row
        return error


def _reason(error: BaseException) -> str:
    """One line: the exception, or the one a framework's report ends with (TorchScript, TensorFlow).

    >>> _reason(RuntimeError("The following operation failed.\\n  ...\\nbuiltins.ValueError: NaN in x"))
    'model failed on this row: builtins.ValueError: NaN in x'
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    raised = [line for line in lines if re.match(r"^[\w.]*(Error|Exception): ", line)]
    text = raised[-1] if raised else f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return f"model failed on this row: {text}"


def _run_tolerant(block: pa.RecordBatch, prepared: PreparedBatch | Exception,
                  plan: InferencePlan) -> tuple[list[pa.Array | None], list[str | None]]:
    """The outputs of one batch (None for a column of a row that failed) and, per row, why it
    failed (None: it did not).

    A batch that raises runs again one row at a time, so one bad row costs only its own output.
    When every row of a batch of several fails in the same way, the fault is not in the rows (a
    model that cannot run at all): that error is raised, not hidden in every row.
    """
    error = prepared
    if not isinstance(prepared, Exception):
        try:
            columns = run_prepared(prepared, plan, block.num_rows)
            return columns, [prepared.failures.get(row) for row in range(block.num_rows)]
        except ModelMismatchError:
            raise
        except Exception as raised:
            error = raised
    if block.num_rows == 1:
        return [None] * len(plan.outputs), [_reason(error)]
    rows = [_run_tolerant(block.slice(row, 1), _prepare_or_error(block.slice(row, 1), plan), plan)
            for row in range(block.num_rows)]
    reasons = [row_reasons[0] for _, row_reasons in rows]
    if all(columns[0] is None for columns, _ in rows) and len(set(reasons)) == 1:
        raise error
    columns = [_concat([columns[index] for columns, _ in rows], plan, binding)
               for index, binding in enumerate(plan.outputs)]
    return columns, reasons


def _concat(arrays: list[pa.Array | None], plan: InferencePlan, binding: OutputBinding) -> pa.Array:
    """One column from the rows' one-row outputs, with a null for each row that failed."""
    kind = next((array.type for array in arrays if array is not None), plan._arrow_type(binding))
    return pa.concat_arrays([array if array is not None else pa.nulls(1, kind) for array in arrays])


__all__ = ["ERROR_MODES", "FAILURE_COLUMN", "InferencePlan", "InputBinding", "OutputBinding", "TopK", "classify", "infer_compute", "prepare"]
