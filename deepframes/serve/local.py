"""A saved breed model run in-process, without a Spark job per photo: the web service's engine.

The model folder's fitted pipeline goes through the pipeline interpreter
(``deepframes.inference.pipeline``): its network runs through its engine and its classifier
(logistic regression, linear SVM or MLP) as a NumPy head, the same plan a SQL function runs. One
photo takes tens of milliseconds.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

from pyspark.sql import SparkSession

from ..apps.novelty import guard_model
from ..apps.predict import Prediction
from ..apps.similar import SimilarPhotos
from ..apps.train import load_model, load_saved_model
from ..images import ImageDecodeError
from ..inference.pipeline import Answer, PipelineFunction


class LocalPipeline:
    """Answers for image bytes from a model folder written by ``deepframes train``.

    ``workers``: how many batches may run through the network at once; by default one per core
    for an ONNX network (each run on one thread: on a busy machine, ONNX Runtime's own thread
    pool waits on descheduled threads and was 3x slower than one thread per run here), one for
    Keras and PyTorch networks.

    Without ``spark`` the folder is read without Spark (``NeedsSpark`` when it cannot be: a
    folder on another file system, a stage only Spark reads), so no JVM runs at all.

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

    def __init__(self, model_dir: str | Path, spark: SparkSession | None = None,
                 reject_threshold: float | None = None, workers: int | None = None) -> None:
        model = load_model(model_dir) if spark is not None else load_saved_model(model_dir)
        guard_model(model, model_dir, reject_threshold)  # before compiling: the plan copies the threshold
        self.function = PipelineFunction(model)
        self.labels = list(self.function.labels)
        self.similar = SimilarPhotos.load(model_dir, spark)
        concurrent = self.function.plan.model.framework == "onnx"  # ONNX Runtime sessions run concurrently
        self.workers = workers or ((os.cpu_count() or 1) if concurrent else 1)
        self._slots = threading.BoundedSemaphore(self.workers)

    def answers(self, photos: Sequence[bytes], top: int = 3) -> list[Answer]:
        """The ``top`` classes of each encoded photo (or why it could not be read), as one batch."""
        with self._slots:
            answers = self.function(photos, top=top)
        if self.similar is not None:
            self.similar.attach(answers)
        return answers

    def predict(self, content: bytes, name: str = "upload", top: int = 3) -> Prediction:
        """The ``top`` classes of one encoded image (or "not recognised" and a hint);
        ``ImageDecodeError`` when it is not an image."""
        (answer,) = self.answers([content], top=top)
        if answer.error is not None:
            raise ImageDecodeError(answer.error)
        return Prediction.from_answer(name, answer)
