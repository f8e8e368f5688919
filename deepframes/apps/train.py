"""A multiclass classifier on image features, saved as a ``PipelineModel`` that takes images.

The saved pipeline is ``ImageFeaturizer -> StringIndexer -> classifier -> IndexToString``, so
``predict``, ``serve`` and ``register_udf`` (for logistic regression) use it on images directly.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from py4j.protocol import Py4JError
from pyspark.errors import PySparkException
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression, MultilayerPerceptronClassifier
from pyspark.ml.feature import IndexToString, StringIndexer, StringIndexerModel
from pyspark.ml.functions import array_to_vector
from pyspark.ml.linalg import VectorUDT
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from .. import storage
from ..inference.novelty import DEFAULT_REJECT_THRESHOLD
from ..inference.saved import NeedsSpark, SavedPipeline, read_saved_pipeline
from .errors import InputError, check_classes
from .featurize import (
    DEFAULT_NETWORK,
    SIDECAR,
    FeaturizerConfig,
    check_featurizer,
    features_frame,
    encoded_images,
    output_name,
    read_featurizer,
)
from .novelty import check_threshold, fit_novelty, novelty_rates
from .similar import save_similar_photos
from .outputs import check_output, is_uri_file, staged_output
from .report import plot_confusion

logger = logging.getLogger(__name__)

CLASSIFIERS = ("logreg", "mlp")
METRICS_FILE = "metrics.json"
CONFUSION_FILE = "confusion_matrix.png"


@dataclass
class TrainResult:
    """Held-out scores of a trained model and where it was saved."""

    out: str
    classifier: str
    accuracy: float
    labels: list[str]
    precision: list[float]
    recall: list[float]
    confusion: list[list[int]]
    num_train: int
    num_test: int
    seconds: float
    novelty: dict | None = None  # the "not recognised" test's rates (see apps/novelty.py)

    def as_dict(self) -> dict:
        result = dict(self.__dict__)
        result["seconds"] = round(self.seconds, 2)
        return result

    def table(self) -> str:
        r"""Per-class precision and recall, then the confusion matrix with its classes named, as text.

        >>> print(TrainResult("m", "logreg", 0.75, ["cat", "dog"], [1.0, 0.667], [0.5, 1.0],
        ...                   [[1, 1], [0, 2]], 12, 4, 1.0).table())
        class  precision  recall
        cat        1.000   0.500
        dog        0.667   1.000
        Confusion matrix (rows: true class, columns: predicted class):
        true \ predicted  cat  dog
        cat                 1    1
        dog                 0    2
        """
        width = max(len("class"), *(len(label) for label in self.labels)) + 2
        lines = [f"{'class':<{width}}precision  recall"]
        lines += [f"{label:<{width}}{p:9.3f}  {r:6.3f}" for label, p, r in zip(self.labels, self.precision, self.recall)]
        lines.append("Confusion matrix (rows: true class, columns: predicted class):")
        corner = "true \\ predicted"
        row_width = max(len(corner), *(len(label) for label in self.labels))
        columns = [max(len(label), *(len(str(row[i])) for row in self.confusion))
                   for i, label in enumerate(self.labels)]
        lines.append(f"{corner:<{row_width}}" + "".join(f"  {label:>{w}}" for label, w in zip(self.labels, columns)))
        lines += [f"{label:<{row_width}}" + "".join(f"  {value:>{w}}" for value, w in zip(row, columns))
                  for label, row in zip(self.labels, self.confusion)]
        return "\n".join(lines)


def is_features_file(path: str | Path, spark: SparkSession | None = None) -> bool:
    """True for a Parquet folder (what ``featurize`` writes), False for images. On other file
    systems than this machine's, a folder written by ``featurize`` (with its ``_deepframes.json``).

    >>> is_features_file("../shared/data/pets/images")
    False
    """
    if str(path).endswith(".parquet"):
        return True
    if not storage.is_local(str(path)):
        return is_uri_file(spark, str(path), SIDECAR)
    folder = Path(storage.local_path(str(path)))
    return folder.is_dir() and any(folder.glob("*.parquet"))


def stratified_split(frame: DataFrame, test_fraction: float, seed: int) -> tuple[DataFrame, DataFrame]:
    """Train and test rows: about ``test_fraction`` of each class in test, at least one on each side."""
    check_test_fraction(test_fraction)
    by_class = Window.partitionBy("label")
    ranked = (frame.withColumn("_order", F.rand(seed))
              .withColumn("_rank", F.row_number().over(by_class.orderBy("_order")))
              .withColumn("_count", F.count(F.lit(1)).over(by_class)))
    cut = F.least(F.greatest(F.round(F.col("_count") * test_fraction), F.lit(1)), F.col("_count") - 1)
    is_test = F.col("_rank") <= cut
    columns = [name for name in frame.columns]
    return ranked.where(~is_test).select(columns), ranked.where(is_test).select(columns)


def check_test_fraction(test_fraction: float) -> None:
    """Raise ``InputError`` unless ``0 < test_fraction < 1``.

    >>> check_test_fraction(1.5)
    Traceback (most recent call last):
    ...
    deepframes.apps.errors.InputError: --test-fraction must lie strictly between 0 and 1; got 1.5.
    """
    if not 0 < test_fraction < 1:
        raise InputError(f"--test-fraction must lie strictly between 0 and 1; got {test_fraction}.")


def resolve_featurizer(source: str, model: str | None = None, weights: str | None = None,
                       spark: SparkSession | None = None) -> FeaturizerConfig:
    """The network to put in front of the classifier, checked before any work (no Spark needed).

    For images, ``model`` (default ``squeezenet1.1``) and ``weights``. For a features folder, the
    network recorded by ``featurize`` beside it; ``weights`` (and ``model``) replace the recorded
    ones, e.g. for features copied from another machine. Raises ``InputError`` when the model could
    not read images: no network recorded and none given, or a weights file that does not exist.
    A ``source`` on another file system than this machine's needs ``spark`` to be looked at.
    """
    if not is_features_file(source, spark):
        return check_featurizer(model or DEFAULT_NETWORK, weights)
    recorded = read_featurizer(source, spark)
    if weights is not None:
        return check_featurizer(model or (recorded.model if recorded else DEFAULT_NETWORK), weights)
    if recorded is None:
        raise InputError(
            f"{source} does not record the network that made its features (no {SIDECAR}), so a model "
            "trained on it could not read images; expected features written by 'deepframes featurize'. "
            "Pass that network with --weights FILE (and --model NAME)."
        )
    if recorded.weights not in (None, "imagenet") and not os.path.exists(recorded.weights):
        raise InputError(
            f"{source} was featurized with {recorded.model} weights from {recorded.weights}, which does not "
            "exist here (features copied from another machine?); expected that file, to copy it into the "
            "model. Pass it with --weights FILE."
        )
    return recorded


def _labelled_features(source: str, label: str, featurizer: FeaturizerConfig,
                       spark: SparkSession) -> DataFrame:
    if is_features_file(source, spark):
        frame = features_frame(source, spark)
        if not isinstance(frame.schema["features"].dataType, VectorUDT):
            frame = frame.withColumn("features", array_to_vector("features"))
        return frame.select("label", "features", *_path(frame))
    files, _ = encoded_images(source, label, spark)  # decoded by the featurizer's batches: the fast path
    features = featurizer.stage(input_col="content").transform(files)
    return features.where(F.col("features").isNotNull()).select("label", "features", "path")


def _path(frame: DataFrame) -> list[str]:
    return ["path"] if "path" in frame.columns else []  # the held-out photos, blurred, are non-pets


def check_model_folder(folder: str, featurizer: FeaturizerConfig) -> None:
    """Raise unless a saved model folder (here: on this machine) carries its network's weights
    file (so it loads anywhere)."""
    if featurizer.weights in (None, "imagenet") or not storage.is_local(folder):
        return
    folder = Path(storage.local_path(folder))
    name = os.path.basename(featurizer.weights.rstrip("/"))
    copies = list(folder.glob(f"stages/*_ImageFeaturizer_*/files/weights/{name}"))
    if not copies:
        raise RuntimeError(
            f"The model saved in {folder} lacks its network's weights file {name} (from {featurizer.weights}); "
            "expected a copy under stages/*_ImageFeaturizer_*/files/weights/. Nothing was written."
        )


def _classifier(name: str, num_features: int, num_classes: int, seed: int):
    if name == "logreg":
        return LogisticRegression(featuresCol="features", labelCol="label_index", maxIter=100, regParam=0.01)
    if name == "mlp":
        return MultilayerPerceptronClassifier(featuresCol="features", labelCol="label_index", maxIter=200,
                                              layers=[num_features, 64, num_classes], seed=seed)
    raise InputError(f"--classifier must be one of {', '.join(CLASSIFIERS)}; got {name!r}.")


def _scores(predictions: DataFrame, labels: list[str]) -> tuple[np.ndarray, float, list[float], list[float]]:
    pairs = np.array(predictions.select("label_index", "prediction").collect(), dtype=np.int64).reshape(-1, 2)
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(confusion, (pairs[:, 0], pairs[:, 1]), 1)
    correct = np.diag(confusion)
    precision = correct / np.maximum(confusion.sum(0), 1)
    recall = correct / np.maximum(confusion.sum(1), 1)
    return confusion, float(correct.sum() / max(confusion.sum(), 1)), precision.tolist(), recall.tolist()


def train_classifier(
    source: str,
    out: str | Path,
    *,
    classifier: str = "logreg",
    test_fraction: float = 0.2,
    seed: int = 0,
    label: str = "filename",
    model: str | None = None,
    weights: str | None = None,
    reject_threshold: float = DEFAULT_REJECT_THRESHOLD,
    spark: SparkSession,
) -> TrainResult:
    """Train on ``source`` (a features file, or images with ``model``/``weights``) and save to ``out``.

    The held-out scores and the confusion matrix (``confusion_matrix.png``, ``metrics.json``) are
    saved in ``out`` beside the pipeline. The pipeline carries an out-of-distribution test fitted
    on the training split (``NoveltyModel``, ``reject_threshold``: see ``apps/novelty.py``), so
    photos unlike every class are answered "not recognised"; ``metrics.json`` records its rates.
    The saved folder carries a copy of the network's weights file, so it is all ``predict`` and
    ``serve`` need. ``model`` and ``weights`` name the network for images (default
    ``squeezenet1.1``); for a features folder they replace the network it records (see
    ``resolve_featurizer``).

    Examples
    --------
    >>> import deepframes, tempfile
    >>> spark = deepframes.session("local[2]")
    >>> result = train_classifier("../shared/data/pets/images/[AB]*_1?.jpg", tempfile.mkdtemp() + "/m",
    ...     weights="../shared/models/squeezenet1.1.onnx", spark=spark)
    >>> result.labels, result.num_test
    (['Abyssinian', 'Bengal'], 4)
    """
    started = time.perf_counter()
    check_threshold(reject_threshold)
    if classifier not in CLASSIFIERS:
        raise InputError(f"--classifier must be one of {', '.join(CLASSIFIERS)}; got {classifier!r}.")
    check_test_fraction(test_fraction)
    check_output(out, spark)  # before any work: a URI whose file system is missing, a folder not ours
    featurizer = resolve_featurizer(source, model, weights, spark)
    frame = _labelled_features(source, label, featurizer, spark)
    frame = frame.cache()
    counts = {row.label: row["count"] for row in frame.groupBy("label").count().collect()}
    check_classes(counts, source)
    train, test = stratified_split(frame, test_fraction, seed)
    indexer = StringIndexer(inputCol="label", outputCol="label_index", stringOrderType="alphabetAsc")
    num_features = frame.first().features.size
    head = _classifier(classifier, num_features, len(counts), seed)
    fitted = Pipeline(stages=[indexer, head]).fit(train)
    labels = list(fitted.stages[0].labels)
    to_label = IndexToString(inputCol="prediction", outputCol="predicted_label", labels=labels)
    num_train = train.count()
    novelty = fit_novelty(train, num_train, reject_threshold, seed)
    stages = [featurizer.stage()] + ([novelty] if novelty else []) + list(fitted.stages)
    stages.append(to_label)
    pipeline = PipelineModel(stages=stages)
    confusion, accuracy, precision, recall = _scores(fitted.transform(test), labels)
    result = TrainResult(output_name(out), classifier, accuracy, labels, precision, recall,
                         confusion.tolist(), num_train, int(confusion.sum()), 0.0)
    result.novelty = novelty_rates(pipeline, novelty, test, spark)
    with staged_output(out, spark) as staging:
        pipeline.write().overwrite().save(staging.uri)
        check_model_folder(staging.uri, featurizer)
        if "path" in train.columns:  # the training photos most like an answer, shown by predict and serve
            save_similar_photos(train, staging.uri, spark)
        (staging.folder / CONFUSION_FILE).write_bytes(plot_confusion(confusion, labels, f"Held-out accuracy {accuracy:.3f}"))
        result.seconds = time.perf_counter() - started
        (staging.folder / METRICS_FILE).write_text(json.dumps(result.as_dict(), indent=2))
    frame.unpersist()
    return result


def check_model_dir(model_dir: str | Path) -> None:
    """Raise ``InputError`` unless ``model_dir`` looks like a folder written by ``train`` (no Spark
    needed; a folder on another file system is checked when it loads).

    >>> check_model_dir("../shared/data/pets")
    Traceback (most recent call last):
    ...
    deepframes.apps.errors.InputError: ../shared/data/pets is not a model folder; expected the folder written by 'deepframes train' (with metadata/ and stages/).
    """
    if not storage.is_local(str(model_dir)):
        return
    folder = Path(storage.local_path(str(model_dir)))
    if not (folder / "metadata").is_dir() or not (folder / "stages").is_dir():
        raise InputError(
            f"{model_dir} is not a model folder; expected the folder written by 'deepframes train' "
            "(with metadata/ and stages/)."
        )


def load_model(model_dir: str | Path) -> PipelineModel:
    """A model folder written by ``train`` (local, or any Hadoop URI); InputError when it is not one."""
    check_model_dir(model_dir)
    if storage.is_local(str(model_dir)):
        model_dir = str(Path(storage.local_path(str(model_dir))).resolve())
    try:
        return PipelineModel.load(str(model_dir))
    except (PySparkException, Py4JError, OSError, ValueError, KeyError) as error:
        raise InputError(f"{model_dir} is not a loadable PipelineModel ({str(error).splitlines()[0]}).") from None


def load_saved_model(model_dir: str | Path) -> SavedPipeline:
    """A local model folder written by ``train``, read without Spark; ``NeedsSpark`` when it is on
    another file system or holds stages only Spark reads (load it with ``load_model`` then)."""
    check_model_dir(model_dir)
    if not storage.is_local(str(model_dir)):
        raise NeedsSpark(f"{model_dir} is not on this machine's disk")
    return read_saved_pipeline(storage.local_path(str(model_dir)))


def model_labels(model: PipelineModel | SavedPipeline) -> list[str]:
    """The class names of a trained pipeline, in the order of its probability vector."""
    if isinstance(model, SavedPipeline):
        return model.labels
    for stage in model.stages:
        if isinstance(stage, StringIndexerModel):
            return list(stage.labels)
    raise InputError("The model has no StringIndexer stage, so its class names are unknown; train it with 'deepframes train'.")
