"""Breed predictions from a saved model: top classes with probabilities, for files or uploaded bytes;
"not recognised", with the nearest breeds as a hint, for photos unlike every breed."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pyspark.ml import PipelineModel
from pyspark.ml.feature import StringIndexerModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ..models import zoo
from ..images import IMAGE_EXTENSIONS, ImageDecodeError, read_images
from ..images.listing import list_local_images
from ..inference import ImageFeaturizer
from ..inference.pipeline import Answer, PipelineFunction, pipeline_novelty
from ..inference.saved import SavedPipeline
from .errors import InputError
from .novelty import guard_model
from .outputs import check_output
from .progress import ImageCount
from .similar import SimilarPhoto, SimilarPhotos
from .train import load_model, load_saved_model, model_labels

# Up to this many local photos, predict runs in-process: a cold Spark session costs about as
# much as featurizing a thousand photos in one process.
IN_PROCESS_MAX_FILES = 1000
_IN_PROCESS_BATCH = 32


@dataclass
class Prediction:
    """The most probable classes of one image, or why it could not be read.

    A photo the model does not recognise has ``recognised`` False, no ``top``, and the breeds the
    classifier leans to in ``hint`` (a hint, not an answer).
    """

    path: str
    top: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None
    recognised: bool = True
    hint: list[str] = field(default_factory=list)
    similar: list[SimilarPhoto] = field(default_factory=list)  # the training photos most like it

    @classmethod
    def from_answer(cls, path: str, answer: Answer) -> Prediction:
        return cls(path, top=answer.top, error=answer.error, recognised=answer.recognised, hint=answer.hint,
                   similar=answer.similar)

    def as_dict(self, thumbnails: bool = False) -> dict:
        """For JSON; ``thumbnails``: the similar training photos' thumbnails as ``data:`` URIs."""
        return {"path": self.path, "error": self.error, "recognised": self.recognised, "hint": self.hint,
                "predictions": [{"label": label, "probability": round(p, 6)} for label, p in self.top],
                "similar": [photo.as_dict(thumbnails) for photo in self.similar]}


class BreedPredictor:
    """A model folder written by ``train``, loaded once, answering for image files or bytes.

    Without ``spark`` the model is read without Spark (``inference.saved``: a local folder of the
    stages ``train`` writes; ``NeedsSpark`` otherwise) and photos are answered in-process; with
    it, ``predict_paths`` reads the photos with Spark and runs the saved ``PipelineModel``.

    Examples
    --------
    >>> import deepframes, tempfile
    >>> from deepframes.apps.train import train_classifier
    >>> spark = deepframes.session("local[2]")
    >>> folder = tempfile.mkdtemp() + "/model"
    >>> _ = train_classifier("../shared/data/pets/images/[AB]*_1?.jpg", folder,
    ...     weights="../shared/models/squeezenet1.1.onnx", spark=spark)
    >>> predictor = BreedPredictor(folder, spark)
    >>> [p.top[0][0] for p in predictor.predict_paths(["../shared/data/pets/images/Bengal_10.jpg"], top=1)]
    ['Bengal']
    """

    def __init__(self, model_dir: str | Path, spark: SparkSession | None,
                 reject_threshold: float | None = None) -> None:
        self.model: PipelineModel | SavedPipeline = load_model(model_dir) if spark is not None else load_saved_model(model_dir)
        guard_model(self.model, model_dir, reject_threshold)
        self.spark = spark
        self.labels = model_labels(self.model)
        self.similar = SimilarPhotos.load(model_dir, spark)
        self._function: PipelineFunction | None = None
        if isinstance(self.model, SavedPipeline):
            self.input_size = zoo.named_model(self.model.featurizer.getOrDefault("model")).preset.size
            return
        featurizers = [stage for stage in self.model.stages if isinstance(stage, ImageFeaturizer)]
        if not featurizers:
            raise InputError(
                f"{model_dir} was trained on a features file without its featurizer, so it cannot read "
                "images; train it on images, or on features written by 'deepframes featurize'."
            )
        self._featurizer = featurizers[0]
        self.input_size = zoo.named_model(featurizers[0].getOrDefault("model")).preset.size
        # Images carry no label column: leave out the StringIndexer, which would warn about it.
        self._runner = PipelineModel(
            stages=[stage for stage in self.model.stages if not isinstance(stage, StringIndexerModel)])

    def _predict(self, frame: DataFrame, top: int) -> list[Prediction]:
        stage = pipeline_novelty(self.model)
        test = stage.novelty_test() if stage is not None else None
        features = self._featurizer.getOutputCol()
        columns = ["path", "probability", features] + ([stage.getOutputCol()] if stage is not None else [])
        rows = self._runner.transform(frame).select(*columns).collect()
        predictions = []
        for row in rows:
            probabilities = row.probability.toArray()
            order = np.argsort(-probabilities)[:top]
            if test is not None and not test.accepts(row[stage.getOutputCol()]):
                predictions.append(Prediction(row.path, recognised=False, hint=[self.labels[i] for i in order]))
            else:
                predictions.append(Prediction(row.path, top=[(self.labels[i], float(probabilities[i])) for i in order]))
        if self.similar is not None and rows:  # one search for all the photos
            found = self.similar.nearest(np.stack([row[features].toArray() for row in rows]))
            for prediction, photos in zip(predictions, found):
                prediction.similar = photos
        return predictions

    def predict_paths(self, paths: list[str], top: int = 3) -> list[Prediction]:
        """Predictions for image files (folders and globs too), in path order."""
        if top < 1:
            raise InputError(f"--top must be a positive integer; got {top}.")
        if self.spark is None:
            return self._predict_in_process(paths, top)
        try:
            images = read_images(paths, size=self.input_size, spark=self.spark).cache()
        except (FileNotFoundError, ValueError) as error:  # no such path, no image files
            raise InputError(str(error)) from None
        failed = {row.path: row.error for row in images.where("error IS NOT NULL").select("path", "error").collect()}
        decoded = images.where("error IS NULL")
        results = self._predict(decoded, top) if len(failed) < images.count() else []
        images.unpersist()
        results += [Prediction(path, error=error) for path, error in failed.items()]
        if not results:
            raise InputError(f"No image files found in {paths}; expected jpg, png, gif, bmp, tiff or webp files.")
        return sorted(results, key=lambda prediction: prediction.path)

    def _predict_in_process(self, paths: list[str], top: int) -> list[Prediction]:
        files = list_local_images(paths, IMAGE_EXTENSIONS, IN_PROCESS_MAX_FILES)
        if files is None:
            raise InputError(f"{paths} are not up to {IN_PROCESS_MAX_FILES} photos on this machine's disk; "
                             "give the predictor a Spark session for them.")
        if not files:
            raise InputError(f"No image files found in {paths}; expected jpg, png, gif, bmp, tiff or webp files.")
        results = []
        for start in range(0, len(files), _IN_PROCESS_BATCH):
            batch = files[start:start + _IN_PROCESS_BATCH]
            photos = [_read_bytes(uri) for uri in batch]
            results += [Prediction.from_answer(uri, answer) for uri, answer in zip(batch, self._answers(photos, top))]
        return results

    def _answers(self, photos: list[bytes], top: int) -> list[Answer]:
        if self._function is None:
            self._function = PipelineFunction(self.model)
        answers = self._function(photos, top=top)
        if self.similar is not None:
            self.similar.attach(answers)
        return answers

    def predict_bytes(self, content: bytes, name: str = "upload", top: int = 3) -> Prediction:
        """The prediction for one encoded image, in-process through the pipeline interpreter (no
        Spark job); raises ``ImageDecodeError`` when it is not an image."""
        (answer,) = self._answers([content], top=top)
        if answer.error is not None:
            raise ImageDecodeError(answer.error)
        return Prediction.from_answer(name, answer)


@dataclass
class PredictionsResult:
    """What ``predict_to_folder`` wrote."""

    out: str
    num_photos: int
    num_failed: int
    num_not_recognised: int
    seconds: float
    num_resumed: int = 0

    def as_dict(self) -> dict:
        result = dict(self.__dict__)
        result["seconds"] = round(self.seconds, 2)
        return result


def predict_to_folder(model_dir: str, images: str | list[str], out: str, *, top: int = 3,
                      output_format: str = "parquet", resume: bool = False, max_errors: float | None = None,
                      reject_threshold: float | None = None, spark: SparkSession,
                      progress: Callable[[ImageCount], None] | None = None) -> PredictionsResult:
    """Predict every photo under ``images`` into the folder ``out``: one row per photo with
    ``path, label, probability, predictions, error``, written as the job runs and continued after
    a crash with ``resume=True`` (``apps.resumable``), as ``featurize_images`` does.

    ``label`` is null for a photo not recognised or that failed (the reason in ``error``).

    Examples
    --------
    >>> import deepframes, tempfile
    >>> from deepframes.apps.train import train_classifier
    >>> spark = deepframes.session("local[2]")
    >>> folder = tempfile.mkdtemp()
    >>> _ = train_classifier("../shared/data/pets/images/[AB]*_1?.jpg", folder + "/model",
    ...     weights="../shared/models/squeezenet1.1.onnx", spark=spark)
    >>> result = predict_to_folder(folder + "/model", "../shared/data/pets/images/Bengal_1?.jpg",
    ...     folder + "/predictions", spark=spark)
    >>> result.num_photos, result.num_failed
    (10, 0)
    """
    from .featurize import encoded_files, output_name
    from .resumable import error_limit, finish_output, open_output, pending, write_rows
    from .watch import FORMATS, predictions_frame

    started = time.perf_counter()
    if output_format not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}; got {output_format!r}.")
    if not isinstance(top, int) or top < 1:
        raise InputError(f"--top must be a positive integer; got {top}.")
    check_output(out, spark)
    model = load_model(model_dir)
    guard_model(model, model_dir, reject_threshold)
    try:
        files = read_images(images, decode=False, spark=spark)
    except (FileNotFoundError, ValueError) as error:  # no such path, no image files
        raise InputError(str(error)) from None
    paths = files.inputFiles()
    options = {"command": "predict", "model": output_name(model_dir), "top": top, "format": output_format,
               "reject_threshold": reject_threshold}
    output = open_output(out, options, resume=resume, spark=spark, output_format=output_format)
    todo = pending(paths, output)

    def rows() -> DataFrame:
        source = files if len(todo) == len(paths) else encoded_files(todo, None, spark)
        return predictions_frame(model, source, top)

    if todo:
        write_rows(rows, output, len(todo), spark=spark, progress=progress,
                   max_errors=error_limit(max_errors, len(paths)))
    (counts,) = spark.read.format(output_format).load(output.out).agg(
        F.count(F.lit(1)).alias("rows"), F.count("error").alias("failed"),
        F.sum(F.when(F.col("error").isNull() & F.col("label").isNull(), 1).otherwise(0)).alias("unknown")).collect()
    finish_output(output, spark)
    return PredictionsResult(output_name(out), counts.rows, counts.failed, int(counts.unknown or 0),
                             time.perf_counter() - started, len(paths) - len(todo))


def _read_bytes(uri: str) -> bytes:
    from .. import storage

    with open(storage.local_path(uri), "rb") as handle:
        return handle.read()


def format_predictions(predictions: list[Prediction]) -> str:
    """A text table: one line per image with its top classes, or "not recognised" and a hint.

    >>> print(format_predictions([Prediction("a.jpg", [("Bengal", 0.91), ("Abyssinian", 0.09)]),
    ...                           Prediction("b.png", recognised=False, hint=["Bengal", "Abyssinian"])]))
    a.jpg  Bengal 0.910  Abyssinian 0.090
    b.png  not recognised (hint, nearest: Bengal, Abyssinian)
    """
    width = max(len(Path(p.path).name) for p in predictions)
    lines = []
    for prediction in predictions:
        name = Path(prediction.path).name
        if prediction.error:
            answer = f"error: {prediction.error}"
        elif not prediction.recognised:
            answer = f"not recognised (hint, nearest: {', '.join(prediction.hint)})"
        else:
            answer = "  ".join(f"{label} {probability:.3f}" for label, probability in prediction.top)
        if prediction.similar:
            answer += "  (like " + ", ".join(f"{photo.name} {photo.distance:.3f}" for photo in prediction.similar) + ")"
        lines.append(f"{name:<{width}}  {answer}")
    return "\n".join(lines)
