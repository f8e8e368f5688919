"""What the inference stages share: checks, their common Params, appending the model's columns."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from dataclasses import replace

from pyspark.ml.functions import array_to_vector
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..core.params import ValidatedParams, check_value, integer, one_of
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


ERRORS = one_of(*ERROR_MODES)


def check_errors(errors: str, stage: str) -> None:
    check_value(stage, "errors", errors, ERRORS)


class HasErrors(ValidatedParams):
    """The ``errors`` Param of the inference stages: what a row the model fails on becomes."""

    errors = Param(Params._dummy(), "errors",
                   "a row whose model batch raises: 'column' (null outputs, the reason in the 'error' "
                   "column; the job goes on) or 'raise' (the job fails)", typeConverter=TypeConverters.toString)
    _parameter_constraints = {"errors": ERRORS}

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(errors="column")

    def getErrors(self) -> str:
        return self.getOrDefault(self.errors)


class HasBatchSize(ValidatedParams):
    """The ``batchSize`` Param of the inference stages: rows per model batch."""

    batchSize = Param(Params._dummy(), "batchSize", "rows per model batch (the last of a partition may have fewer)",
                      typeConverter=TypeConverters.toInt)
    _parameter_constraints = {"batchSize": integer(1)}

    def getBatchSize(self) -> int:
        return self.getOrDefault(self.batchSize)


__all__ = ["HasBatchSize", "HasErrors", "apply_plan", "as_vectors", "check_errors", "check_input_columns"]
