"""A saved breed model run in-process, without a Spark job per image: the web service's engine.

The pipeline's ``ImageFeaturizer`` network runs through its engine (ONNX Runtime or Keras) and a
logistic regression head in NumPy, which answers one photo in tens of milliseconds. Other heads
(the MLP) fall back to a Spark job on the long-lived local session (``BreedPredictor``).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from pyspark.ml.classification import LogisticRegressionModel
from pyspark.sql import SparkSession

from ..models import zoo
from ..apps.predict import BreedPredictor, Prediction
from ..images import decode_image
from ..inference import ImageFeaturizer


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max())
    return shifted / shifted.sum()


class LocalPipeline:
    """Answers for image bytes from a model folder written by ``deepframes train``.

    Examples
    --------
    >>> import deepframes, tempfile
    >>> from deepframes.apps.train import train_classifier
    >>> spark = deepframes.session("local[2]")
    >>> folder = tempfile.mkdtemp() + "/model"
    >>> _ = train_classifier("../shared/data/pets/images/[AB]*_1?.jpg", folder,
    ...     weights="../shared/models/squeezenet1.1.onnx", spark=spark)
    >>> pipeline = LocalPipeline(folder, spark)
    >>> photo = open("../shared/data/pets/images/Bengal_10.jpg", "rb").read()
    >>> pipeline.predict(photo, top=1).top[0][0], pipeline.mode
    ('Bengal', 'in-process')
    """

    def __init__(self, model_dir: str | Path, spark: SparkSession) -> None:
        self.predictor = BreedPredictor(model_dir, spark)
        self.labels = self.predictor.labels
        stages = self.predictor.model.stages
        featurizer = next(stage for stage in stages if isinstance(stage, ImageFeaturizer))
        heads = [stage for stage in stages if isinstance(stage, LogisticRegressionModel)]
        self.mode = "in-process" if heads else "spark"
        self._lock = threading.Lock()
        if heads:
            name = featurizer.getOrDefault("model")
            named = zoo.named_model(name)
            weights = featurizer.getOrDefault("weights") if featurizer.isDefined("weights") else None
            spec = zoo.model_spec(name, weights, include_top=False, pooling=featurizer.getOrDefault("pooling"))
            self._engine = spec.load()
            self._preset = named.preset
            self._input = self._engine.inputs[0].name
            self._output = named.feature_output or self._engine.outputs[0].name
            self._coefficients = heads[0].coefficientMatrix.toArray()
            self._intercepts = heads[0].interceptVector.toArray()

    def _probabilities(self, features: np.ndarray) -> np.ndarray:
        scores = self._coefficients @ features + self._intercepts
        if len(scores) == 1 and len(self.labels) == 2:  # binomial: one score for class 1
            positive = 1.0 / (1.0 + np.exp(-scores[0]))
            return np.array([1.0 - positive, positive])
        return _softmax(scores)

    def predict(self, content: bytes, name: str = "upload", top: int = 3) -> Prediction:
        """The ``top`` classes of one encoded image; ``ImageDecodeError`` when it is not an image."""
        if self.mode == "spark":
            return self.predictor.predict_bytes(content, name, top)
        pixels = decode_image(content, size=self._preset.size)[..., :3]
        if pixels.shape[2] == 1:
            pixels = np.repeat(pixels, 3, axis=2)
        batch = self._preset.normalise(pixels[np.newaxis].astype(np.float32))
        with self._lock:
            features = self._engine.run({self._input: batch})[self._output].reshape(-1)
        probabilities = self._probabilities(features.astype(np.float64))
        order = np.argsort(-probabilities)[:top]
        return Prediction(name, top=[(self.labels[i], float(probabilities[i])) for i in order])
