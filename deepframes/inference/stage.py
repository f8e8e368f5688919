"""What the inference stages share: the dry run, the Arrow UDF, and saving the model files."""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pyarrow as pa
from pyspark.ml import Transformer
from pyspark.ml.util import (
    DefaultParamsReader,
    DefaultParamsWriter,
    MLReadable,
    MLReader,
    MLWritable,
    MLWriter,
)
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DoubleType, StringType, StructField, StructType

from .. import storage
from ..blocks.arrays import OutputSpec
from ..blocks.inputs import sample
from ..blocks.shapes import SHAPE_KEY, format_shape
from .runner import InferencePlan, OutputBinding, infer_batches, prepare

PREDICTION_SPARK_TYPE = ArrayType(
    StructType([StructField("label", StringType(), True), StructField("probability", DoubleType(), True)])
)


def check_input_columns(df: DataFrame, columns: Sequence[str], stage: str) -> None:
    missing = [name for name in columns if name not in df.columns]
    if missing:
        raise ValueError(
            f"{stage}: input column(s) {missing} are not in the DataFrame. Available columns: "
            f"{df.columns}. Set inputCol/inputCols to one of them."
        )


def _first_complete_rows(df: DataFrame, plan: InferencePlan) -> pa.RecordBatch:
    table = sample(df, [binding.column for binding in plan.inputs])
    if table.num_rows == 0:
        raise ValueError("The DataFrame is empty: there is nothing to check the model against.")
    return table.combine_chunks().to_batches()[0]


def dry_run(df: DataFrame, plan: InferencePlan, output_columns: Sequence[str]) -> InferencePlan:
    """Run the model on the first rows, on the driver, before any job: check that inputs fit and
    read the output shapes off the result. Returns the plan with its output columns filled in."""
    engine = plan.model.load()
    for binding in plan.inputs:
        declared = next((info for info in engine.inputs if info.name == binding.input_name), None)
        if declared is None:
            raise ValueError(
                f"The model has no input {binding.input_name!r}; its inputs are "
                f"{[info.name for info in engine.inputs]}. Set inputNames to match inputCols."
            )
    batch = _first_complete_rows(df, plan)
    prepared = prepare(batch, plan)
    if prepared.num_rows == 0:
        if all(binding.preset is not None for binding in plan.inputs):
            return plan_on_zeros(plan, output_columns)  # every sampled image failed to decode
        raise _all_null_error(plan)
    _check_shapes(prepared.feeds, plan, engine)
    results = engine.run({name: value[:1] for name, value in prepared.feeds.items()})
    bindings = []
    for binding, column in zip(plan.outputs, output_columns):
        if binding.output_name not in results:
            raise ValueError(
                f"The model has no output {binding.output_name!r}; its outputs are {sorted(results)}. "
                "Set outputNames to some of them."
            )
        spec = OutputSpec.infer(column, np.asarray(results[binding.output_name]))
        bindings.append(OutputBinding(binding.output_name, spec))
    return replace(plan, outputs=tuple(bindings))


def plan_on_zeros(plan: InferencePlan, output_columns: Sequence[str]) -> InferencePlan:
    """Fill in the output columns by running the model on one black image (no DataFrame needed)."""
    engine = plan.model.load()
    feeds = {}
    for binding in plan.inputs:
        if binding.preset is None:
            raise ValueError("Only models over an image column can be registered without a DataFrame.")
        height, width = binding.preset.size
        feeds[binding.input_name] = binding.preset.normalise(np.zeros((1, height, width, 3), np.float32))
    results = engine.run(feeds)
    return replace(plan, outputs=tuple(
        OutputBinding(binding.output_name, OutputSpec.infer(column, np.asarray(results[binding.output_name])))
        for binding, column in zip(plan.outputs, output_columns)
    ))


def _all_null_error(plan: InferencePlan) -> ValueError:
    return ValueError(
        "The first rows of the input columns are all null, so the model cannot be checked: filter "
        f"nulls first (df.dropna(subset={[b.column for b in plan.inputs]}))."
    )


def _check_shapes(feeds: dict, plan: InferencePlan, engine) -> None:
    for binding in plan.inputs:
        info = next(info for info in engine.inputs if info.name == binding.input_name)
        received = feeds[binding.input_name].shape
        expected = info.shape
        fits = len(expected) <= 1 or (
            len(expected) == len(received)
            and all(e < 0 or e == r for e, r in zip(expected[1:], received[1:]))
        )
        if not fits:
            raise ValueError(
                f"Column {binding.column!r} gives model input {binding.input_name!r} batches of "
                f"shape {format_shape([-1, *received[1:]])}; the model expects "
                f"{format_shape(expected)}. Reshape the column (append_shape) or pick another input."
            )


def output_spark_type(plan: InferencePlan, binding: OutputBinding):
    if plan.output_arrow_type == pa.string():
        return StringType()
    return PREDICTION_SPARK_TYPE if plan.top_k is not None else binding.spec.spark_type


def inference_udf(plan: InferencePlan):
    """The scalar-iterator Arrow UDF that runs ``plan`` (a struct of outputs if several)."""
    from pyspark.sql.pandas.functions import ArrowUDFType, arrow_udf

    types = [output_spark_type(plan, binding) for binding in plan.outputs]
    schema = types[0] if len(types) == 1 else StructType(
        [StructField(b.spec.name, t, True) for b, t in zip(plan.outputs, types)]
    )
    with warnings.catch_warnings():  # Spark prefers type hints; a partial has none to give
        warnings.simplefilter("ignore", UserWarning)
        return arrow_udf(functools.partial(infer_batches, plan=plan), schema, ArrowUDFType.SCALAR_ITER)


def apply_plan(df: DataFrame, plan: InferencePlan) -> DataFrame:
    """Append the plan's output columns to ``df`` with a scalar-iterator Arrow UDF."""
    single = len(plan.outputs) == 1
    udf = inference_udf(plan)
    call = udf(*[F.col(binding.column) for binding in plan.inputs])
    if single:
        result = df.withColumn(plan.outputs[0].spec.name, call)
    else:
        holder = "__deepframes_outputs"
        result = df.withColumn(holder, call).select(
            *[F.col(name) for name in df.columns if name not in {b.spec.name for b in plan.outputs}],
            *[F.col(holder)[b.spec.name].alias(b.spec.name) for b in plan.outputs],
        )
    for binding in plan.outputs:
        if binding.spec.cell_shape and plan.output_arrow_type is None:
            result = result.withMetadata(binding.spec.name, {SHAPE_KEY: binding.spec.block_shape})
    return result


def check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(
            f"The 'batchSize' parameter must be a positive integer. Got {batch_size!r} instead."
        )


# ---- persistence: weights live in files the stage writes itself ---------------------------


class ModelFileWriter(MLWriter):
    """Saves Params as JSON and copies the stage's model files under ``path/files/``."""

    def __init__(self, instance: Transformer) -> None:
        super().__init__()
        self.instance = instance

    def saveImpl(self, path: str) -> None:
        # File names go into the metadata, so loading never has to list a (remote) folder.
        files = {}
        for name in self.instance.file_params:
            value = self.instance.getOrDefault(name) if self.instance.isDefined(name) else None
            if isinstance(value, str) and os.path.exists(value):
                files[name] = (value, os.path.basename(value.rstrip("/")))
        storage.check_file_system(self.sparkSession, path)
        DefaultParamsWriter.saveMetadata(self.instance, path, self.sc,
                                         extraMetadata={"files": {name: base for name, (_, base) in files.items()}})
        for name, (value, base) in files.items():
            storage.copy_to(self.sparkSession, value, storage.join(path, "files", name, base))


class ModelFileReader(MLReader):
    """Loads a stage saved by ModelFileWriter, pointing its file Params at the saved copies."""

    def __init__(self, cls: type) -> None:
        super().__init__()
        self.cls = cls

    def load(self, path: str) -> Transformer:
        metadata = DefaultParamsReader.loadMetadata(path, self.sc)
        instance = self.cls()
        DefaultParamsReader.getAndSetParams(instance, metadata)
        instance._resetUid(metadata["uid"])
        files = metadata.get("files")
        for name in self.cls.file_params:
            saved = files.get(name) if files is not None else _listed(path, name)
            if saved:
                uri = storage.join(path, "files", name, saved)
                instance._set(**{name: storage.local_copy(self.sparkSession, uri)})
        return instance


def _listed(path: str, name: str) -> str | None:
    """The file saved for ``name`` by a version that did not record file names (local saves)."""
    folder = os.path.join(storage.local_path(path), "files", name)
    return os.listdir(folder)[0] if os.path.isdir(folder) and os.listdir(folder) else None


class ModelFileStage(MLReadable, MLWritable):
    """Mixin: save/load that carry the files named in ``file_params`` with the stage."""

    file_params: tuple[str, ...] = ()

    def write(self) -> MLWriter:
        return ModelFileWriter(self)

    @classmethod
    def read(cls) -> MLReader:
        return ModelFileReader(cls)


__all__ = ["ModelFileStage", "apply_plan", "check_batch_size", "check_input_columns", "dry_run", "plan_on_zeros"]
