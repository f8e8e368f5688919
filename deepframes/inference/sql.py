"""``register_udf``: a model stage or a fitted PipelineModel as a Spark SQL function."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace

import numpy as np
from pyspark.ml import Transformer
from pyspark.sql import SparkSession

from ..core.udf import column_udf
from .pipeline import compile_pipeline
from .runner import infer_compute


def register_udf(
    spark: SparkSession,
    name: str,
    model: Transformer,
    preprocessor: Callable[[np.ndarray], np.ndarray] | None = None,
) -> None:
    """Register ``model`` as the SQL function ``name``.

    ``model`` is an ``ImagePredictor`` (the function returns the most probable label), an
    ``ImageFeaturizer`` (the feature array), a ``TextEmbedder`` (a text's embedding, as an
    array), a ``ModelTransformer`` around any ONNX, Keras or
    PyTorch model (its outputs; a struct when there are several), or a fitted ``PipelineModel``
    of an ``ImageFeaturizer`` and an MLlib logistic regression, linear SVM or multilayer
    perceptron, with the ``StringIndexer`` that made its labels (the predicted label, e.g. the
    breed's name). Image models take an image struct or encoded image files; the function's
    arguments follow the stage's input columns. The whole pipeline runs in one Python batch:
    network, classifier and labels, exactly as ``transform`` computes them.

    A pipeline trained by ``deepframes train`` carries an out-of-distribution test (a
    ``NoveltyModel`` stage): for a photo it does not recognise (noise, a blank image, something
    that is no class it was trained on), the function returns NULL rather than inventing a
    label, as for an unreadable photo. Count them with ``COUNT(*) - COUNT(label)``; change how
    strict the test is with the stage's ``setRejectThreshold`` before registering (0: every
    photo gets a label).

    Parameters
    ----------
    spark : SparkSession
    name : str
        The SQL function's name.
    model : Transformer
    preprocessor : callable, optional
        Applied to each model-ready input batch (``(rows, ...)`` float32 NumPy array, e.g.
        ``(rows, 3, 224, 224)`` for SqueezeNet) before the model, as sparkdl's
        ``registerKerasImageUDF(..., preprocessor)``; it must be picklable (a top-level function
        or a lambda) and keep the batch's shape.

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
    if preprocessor is not None and not callable(preprocessor):
        raise TypeError(f"preprocessor must be a function of a NumPy batch; received {type(preprocessor).__name__}.")
    plan = compile_pipeline(model, top=1)
    plan = replace(plan.shipped(spark), preprocess=preprocessor)
    inputs = [binding.column for binding in plan.inputs]
    spark.udf.register(name, column_udf(functools.partial(infer_compute, plan=plan), inputs, plan.output_columns()))


__all__ = ["register_udf"]
