"""A saved breed model run in-process, without a Spark job per photo: the web service's engine.

The model folder's fitted pipeline goes through the pipeline interpreter
(``deepframes.inference.pipeline``): its network runs through its engine and its classifier
(logistic regression, linear SVM or MLP) as a NumPy head, the same plan a SQL function runs. One
photo takes tens of milliseconds.
"""

from __future__ import annotations

import threading
from pathlib import Path

from pyspark.sql import SparkSession

from ..apps.novelty import guard_model
from ..apps.predict import Prediction
from ..apps.train import load_model
from ..images import ImageDecodeError
from ..inference.pipeline import PipelineFunction


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

    mode = "in-process"

    def __init__(self, model_dir: str | Path, spark: SparkSession, reject_threshold: float | None = None) -> None:
        model = load_model(model_dir)
        guard_model(model, model_dir, reject_threshold)  # before compiling: the plan copies the threshold
        self.function = PipelineFunction(model)
        self.labels = list(self.function.labels)
        self._lock = threading.Lock()  # one batch at a time through the loaded network

    def predict(self, content: bytes, name: str = "upload", top: int = 3) -> Prediction:
        """The ``top`` classes of one encoded image (or "not recognised" and a hint);
        ``ImageDecodeError`` when it is not an image."""
        with self._lock:
            (answer,) = self.function([content], top=top)
        if answer.error is not None:
            raise ImageDecodeError(answer.error)
        return Prediction.from_answer(name, answer)
