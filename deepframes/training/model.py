"""``ClassifierModel``: what an estimator's ``fit`` returns, a ``ModelTransformer`` that also
writes the predicted class index, and keeps the training history and summary."""

from __future__ import annotations

import json
import os

from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasPredictionCol, HasProbabilityCol
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from .._scratch import scratch_folder
from ..core.params import STRING
from ..inference.transformer import ModelTransformer


class ClassifierModel(ModelTransformer, HasPredictionCol, HasProbabilityCol):
    """A trained classifier over ``inputCols[0]``: class probabilities into ``probabilityCol``
    (an array), the most probable class index into ``predictionCol`` (a double, as MLlib's).

    Attributes
    ----------
    history_ : dict of str to list of float
        Loss and metrics per epoch (``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``, ...).
    summary_ : dict
        Final metrics, epochs run, slots, seconds and samples per second of the fit.
    """

    trainingHistory = Param(Params._dummy(), "trainingHistory", "JSON: per-epoch metrics and the fit's summary",
                            typeConverter=TypeConverters.toString)
    _parameter_constraints = {"trainingHistory": STRING}

    def __init__(self, *, model=None, inputCols=None, framework="", batchSize=64, predictionCol="prediction",
                 probabilityCol="probability", trainingHistory="{}"):
        super(ModelTransformer, self).__init__()
        self._setDefault(framework="", batchSize=64, predictionCol="prediction", probabilityCol="probability",
                         trainingHistory="{}")
        kwargs = {"model": model, "inputCols": inputCols, "framework": framework, "batchSize": batchSize,
                  "predictionCol": predictionCol, "probabilityCol": probabilityCol,
                  "trainingHistory": trainingHistory}
        self._set(**{name: value for name, value in kwargs.items() if value is not None})

    @property
    def history_(self) -> dict[str, list[float]]:
        return json.loads(self.getOrDefault(self.trainingHistory)).get("history", {})

    @property
    def summary_(self) -> dict:
        return json.loads(self.getOrDefault(self.trainingHistory)).get("summary", {})

    def _transform(self, dataset: DataFrame) -> DataFrame:
        probability = self.getProbabilityCol()
        stage = self.copy({self.outputCols: [probability]})
        scored = ModelTransformer._transform(stage, dataset)
        best = F.array_position(F.col(probability), F.array_max(F.col(probability))) - 1
        return scored.withColumn(self.getPredictionCol(), best.cast("double"))


def write_model_file(content: bytes, name: str) -> str:
    """Write a trained model's bytes to a new folder the fitted stage points at (``save`` copies
    it into the stage's own folder)."""
    folder = scratch_folder()
    # A name of its own: SparkContext.addFile refuses a second, different file of the same name.
    stem, extension = os.path.splitext(name)
    path = os.path.join(folder, f"{stem}-{os.path.basename(folder).rsplit('-', 1)[-1]}{extension}")
    with open(path, "wb") as handle:
        handle.write(content)
    return path


__all__ = ["ClassifierModel", "write_model_file"]
