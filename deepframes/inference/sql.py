"""``register_udf``: a model stage or a fitted PipelineModel as a Spark SQL function."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from pyspark.ml import PipelineModel, Transformer
from pyspark.ml.classification import LinearSVCModel, LogisticRegressionModel
from pyspark.ml.feature import IndexToString, StringIndexerModel
from pyspark.sql import SparkSession

from .images import ImageFeaturizer, ImagePredictor
from .runner import InferencePlan, LinearHead

_SUPPORTED = "ImageFeaturizer -> [StringIndexer] -> LogisticRegression or LinearSVC -> [IndexToString]"


def _head(classifier: Transformer, labels: list[str]) -> LinearHead:
    if isinstance(classifier, LogisticRegressionModel):
        coefficients = classifier.coefficientMatrix.toArray()
        intercepts = classifier.interceptVector.toArray()
    elif isinstance(classifier, LinearSVCModel):
        coefficients = classifier.coefficients.toArray()[np.newaxis]
        intercepts = np.array([classifier.intercept])
    else:
        raise TypeError(
            f"register_udf cannot run a {type(classifier).__name__} in SQL; supported pipelines: {_SUPPORTED}."
        )
    return LinearHead(coefficients, intercepts, tuple(labels))


def _labels(stages: list[Transformer], classifier: Transformer) -> list[str]:
    for stage in stages:
        if isinstance(stage, StringIndexerModel) and stage.getOutputCol() == classifier.getLabelCol():
            return list(stage.labels)
        if isinstance(stage, IndexToString) and stage.isDefined(stage.labels):
            return list(stage.getLabels())
    classes = int(getattr(classifier, "numClasses", 2))
    return [str(float(index)) for index in range(classes)]


def _pipeline_plan(model: PipelineModel) -> InferencePlan:
    stages = list(model.stages)
    featurizers = [stage for stage in stages if isinstance(stage, ImageFeaturizer)]
    classifiers = [stage for stage in stages if isinstance(stage, (LogisticRegressionModel, LinearSVCModel))]
    others = [stage for stage in stages if not isinstance(
        stage, (ImageFeaturizer, LogisticRegressionModel, LinearSVCModel, StringIndexerModel, IndexToString))]
    if len(featurizers) != 1 or len(classifiers) != 1 or others:
        names = [type(stage).__name__ for stage in stages]
        raise TypeError(f"register_udf supports pipelines of the form {_SUPPORTED}; this one is {names}.")
    classifier = classifiers[0]
    if classifier.getFeaturesCol() != featurizers[0].getOutputCol():
        raise ValueError(
            f"The classifier reads {classifier.getFeaturesCol()!r} but the featurizer writes "
            f"{featurizers[0].getOutputCol()!r}."
        )
    return replace(featurizers[0].sql_plan(), head=_head(classifier, _labels(stages, classifier)))


def register_udf(spark: SparkSession, name: str, model: Transformer) -> None:
    """Register ``model`` as the SQL function ``name``, taking an image column.

    ``model`` is an ``ImagePredictor`` (the function returns the most probable label), an
    ``ImageFeaturizer`` (it returns the feature array), or a fitted ``PipelineModel`` of an
    ``ImageFeaturizer`` and an MLlib logistic regression or linear SVM, with the ``StringIndexer``
    that made its labels (it returns the predicted label, e.g. the breed's name). The classifier
    runs in the same Python batch as the network, so one SQL call does the whole pipeline.

    Examples
    --------
    >>> import deepframes
    >>> spark = deepframes.session("local[2]")
    >>> predictor = deepframes.ImagePredictor(model="squeezenet1.1",
    ...     weights="../shared/models/squeezenet1.1.onnx")
    >>> deepframes.register_udf(spark, "imagenet_class", predictor)
    >>> deepframes.read_images("../shared/data/pets/images/Bengal_10.jpg").createOrReplaceTempView("one")
    >>> isinstance(spark.sql("SELECT imagenet_class(image) AS label FROM one").first().label, str)
    True
    """
    if isinstance(model, PipelineModel):
        plan = _pipeline_plan(model)
    elif isinstance(model, (ImagePredictor, ImageFeaturizer)):
        plan = model.sql_plan()
    else:
        raise TypeError(
            f"register_udf takes an ImagePredictor, an ImageFeaturizer or a PipelineModel; received "
            f"{type(model).__name__}."
        )
    from .stage import inference_udf

    plan = replace(plan, model=plan.model.ship(spark))
    spark.udf.register(name, inference_udf(plan))


__all__ = ["register_udf"]
