"""What the inference stages share: checks, appending the model's columns, saving the model files."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

from dataclasses import replace

from pyspark.ml import Transformer
from pyspark.ml.functions import array_to_vector
from pyspark.ml.param import Param, Params, TypeConverters
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

from .. import storage
from ..core.udf import append_columns
from .failures import current_counter, merge_reasons
from .runner import ERROR_MODES, InferencePlan, infer_compute


def check_input_columns(df: DataFrame, columns: Sequence[str], stage: str) -> None:
    missing = [name for name in columns if name not in df.columns]
    if missing:
        raise ValueError(
            f"{stage}: input column(s) {missing} are not in the DataFrame. Available columns: "
            f"{df.columns}. Set inputCol/inputCols to one of them."
        )


def apply_plan(df: DataFrame, plan: InferencePlan, stage: str, errors: str = "raise") -> DataFrame:
    """``df`` with the plan's output columns appended (planning only: no job, no model run).

    ``errors="column"``: a row the model fails on gets null outputs and the reason in the
    ``error`` column (``deepframes.inference.failures``); ``"raise"``: its error fails the job.
    """
    check_errors(errors, stage)
    if errors == "column":
        plan = replace(plan, errors="column", failure_counter=current_counter())
    result = append_columns(
        df, functools.partial(infer_compute, plan=plan), [binding.column for binding in plan.inputs],
        plan.output_columns(), operation=stage, fix="Set outputCol/outputCols to a new name",
    )
    return merge_reasons(result, df.columns) if errors == "column" else result


def as_vectors(df: DataFrame, column: str) -> DataFrame:
    """``df`` with the float array column ``column`` as ML vectors (null stays null), as MLlib
    and ``nearest_neighbors`` take features."""
    return df.withColumn(column, F.when(df[column].isNull(), None).otherwise(array_to_vector(df[column])))


def check_errors(errors: str, stage: str) -> None:
    if errors not in ERROR_MODES:
        raise ValueError(
            f"The 'errors' parameter of {stage} must be one of {list(ERROR_MODES)}. Got {errors!r} instead."
        )


class HasErrors(Params):
    """The ``errors`` Param of the inference stages: what a row the model fails on becomes."""

    errors = Param(Params._dummy(), "errors",
                   "a row whose model batch raises: 'column' (null outputs, the reason in the 'error' "
                   "column; the job goes on) or 'raise' (the job fails)", typeConverter=TypeConverters.toString)

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(errors="column")

    def getErrors(self) -> str:
        return self.getOrDefault(self.errors)

    def setErrors(self, value: str) -> HasErrors:
        return self._set(errors=value)


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
        # The session, not its SparkContext: a Connect session has none.
        DefaultParamsWriter.saveMetadata(self.instance, path, self.sparkSession,
                                         extraMetadata={"files": {name: base for name, (_, base) in files.items()}})
        for name, (value, base) in files.items():
            storage.copy_to(self.sparkSession, value, storage.join(path, "files", name, base))


class ModelFileReader(MLReader):
    """Loads a stage saved by ModelFileWriter, pointing its file Params at the saved copies."""

    def __init__(self, cls: type) -> None:
        super().__init__()
        self.cls = cls

    def load(self, path: str) -> Transformer:
        metadata = DefaultParamsReader.loadMetadata(path, self.sparkSession)
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


__all__ = ["HasErrors", "ModelFileStage", "apply_plan", "as_vectors", "check_batch_size", "check_input_columns"]
