"""Image features plus labels and paths, in Parquet: the input of ``study`` and ``train``.

Beside the Parquet files, ``_deepframes.json`` records which network made the features (Spark
skips files starting with ``_``), so ``train`` can put the same featurizer in front of its model.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from py4j.protocol import Py4JError
from pyspark.errors import PySparkException
from pyspark.ml.functions import vector_to_array
from pyspark.ml.linalg import VectorUDT
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from .. import storage
from ..models import zoo
from ..images import read_images
from ..inference import ImageFeaturizer
from .errors import InputError, check_classes
from .outputs import check_output, is_uri_file, staged_output

logger = logging.getLogger(__name__)

SIDECAR = "_deepframes.json"


@dataclass(frozen=True)
class FeaturizerConfig:
    """The network that made a features file, enough to rebuild its ``ImageFeaturizer``."""

    model: str
    weights: str | None
    pooling: str | None = "avg"

    def stage(self) -> ImageFeaturizer:
        """The ``ImageFeaturizer`` these features came from."""
        return ImageFeaturizer(model=self.model, weights=self.weights, pooling=self.pooling)

    def input_size(self) -> tuple[int, int]:
        return zoo.named_model(self.model).preset.size


@dataclass
class FeaturizeResult:
    """What ``featurize_images`` wrote."""

    out: str
    num_images: int
    num_failed: int
    num_features: int
    class_counts: dict[str, int]
    seconds: float
    featurizer: FeaturizerConfig = field(repr=False)

    def as_dict(self) -> dict:
        result = asdict(self)
        result["featurizer"] = asdict(self.featurizer)
        result["seconds"] = round(self.seconds, 2)
        return result


def check_featurizer(model: str, weights: str | None) -> FeaturizerConfig:
    """Validate ``--model``/``--weights`` before any work (InputError, exit 2, when they cannot work)."""
    try:
        named = zoo.named_model(model)
    except ValueError as error:
        raise InputError(str(error)) from None
    if weights not in (None, "imagenet"):
        if not os.path.exists(weights):
            raise InputError(f"Weights file not found: {weights}. Give an existing file with --weights.")
        weights = os.path.abspath(weights)
    if named.framework == "onnx" and not weights:
        raise InputError(
            f"--model {model} needs its ONNX file: --weights path/to/{model}.onnx. Received no --weights."
        )
    return FeaturizerConfig(model, weights)


def read_labelled_images(
    images: str | list[str], label: str | None, size, spark: SparkSession
) -> tuple[DataFrame, int]:
    """Decoded images with labels, and how many files failed to decode (logged and dropped).

    Raises InputError when no image is left."""
    try:
        frame = read_images(images, label=label, size=size, spark=spark)
    except (FileNotFoundError, ValueError) as error:  # no such path, no image files, a bad --label
        raise InputError(str(error)) from None
    frame = frame.cache()
    failed = frame.where(F.col("error").isNotNull()).select("path", "error").collect()
    for row in failed[:10]:
        logger.warning("skipped %s: %s", row.path, row.error)
    decoded = frame.where(F.col("error").isNull())
    if label is not None:
        decoded = decoded.where(F.col("label").isNotNull())
    if decoded.limit(1).count() == 0:
        raise InputError(
            f"No readable images in {images}; expected image files (jpg, png, gif, bmp, tiff, webp)"
            + (" with a label" if label else "") + ". Check the path" + (" and --label." if label else ".")
        )
    return decoded, len(failed)


def featurize_images(
    images: str | list[str],
    out: str | Path,
    *,
    model: str = "squeezenet1.1",
    weights: str | None = None,
    label: str | None = "filename",
    spark: SparkSession,
) -> FeaturizeResult:
    """Featurize every image under ``images`` and write ``path, label, features`` to Parquet.

    Examples
    --------
    >>> import deepframes, tempfile
    >>> spark = deepframes.session("local[2]")
    >>> result = featurize_images("../shared/data/pets/images/[AB]*_1?.jpg", tempfile.mkdtemp() + "/f",
    ...     weights="../shared/models/squeezenet1.1.onnx", spark=spark)
    >>> result.num_images, result.num_features, result.class_counts
    (20, 512, {'Abyssinian': 10, 'Bengal': 10})
    """
    started = time.perf_counter()
    config = check_featurizer(model, weights)
    check_output(out, spark)  # before any work: a URI whose file system is missing, a folder not ours
    decoded, num_failed = read_labelled_images(images, label, config.input_size(), spark)
    if label is not None:  # labelled features are for study and train: check them before any work
        counts = {row.label: row["count"] for row in decoded.groupBy("label").count().collect()}
        where = ", ".join(images) if isinstance(images, list) else str(images)
        check_classes(counts, f"{where} (--label {label})")
    columns = ["path", "label", "features"] if label is not None else ["path", "features"]
    featurized = config.stage().transform(decoded).select(*columns)
    with staged_output(out, spark) as staging:
        featurized.write.mode("overwrite").parquet(staging.uri)
        written = spark.read.parquet(staging.uri)
        num_images = written.count()
        first = written.first()
        counts = (
            {row.label: row["count"] for row in written.groupBy("label").count().collect()}
            if label is not None else {}
        )
        (staging.folder / SIDECAR).write_text(json.dumps({"featurizer": asdict(config), "label": label}, indent=2))
    return FeaturizeResult(output_name(out), num_images, num_failed, first.features.size,
                           dict(sorted(counts.items(), key=lambda item: str(item[0]))),
                           time.perf_counter() - started, config)


@dataclass
class Features:
    """A features file loaded on the driver as NumPy."""

    matrix: np.ndarray  # (rows, features) float32
    labels: np.ndarray  # (rows,) str
    paths: np.ndarray
    featurizer: FeaturizerConfig | None

    def class_counts(self) -> dict[str, int]:
        names, counts = np.unique(self.labels, return_counts=True)
        return {str(name): int(count) for name, count in zip(names, counts)}


def output_name(out: str | Path) -> str:
    """``out`` as the result reports it: an absolute path, or the URI as given."""
    return str(Path(storage.local_path(str(out))).resolve()) if storage.is_local(str(out)) else str(out).rstrip("/")


def read_featurizer(path: str | Path, spark: SparkSession | None = None) -> FeaturizerConfig | None:
    """The featurizer recorded beside a features file (local or any Hadoop URI) by
    ``featurize_images``, if any."""
    if not is_uri_file(spark, str(path), SIDECAR):
        return None
    sidecar = Path(storage.local_copy(spark, storage.join(str(path), SIDECAR)))
    return FeaturizerConfig(**json.loads(sidecar.read_text())["featurizer"])


def features_frame(path: str | Path, spark: SparkSession) -> DataFrame:
    """A features Parquet file as a DataFrame with a ``label`` and a ``features`` column (InputError otherwise)."""
    try:
        frame = spark.read.parquet(str(path))
    except (PySparkException, Py4JError) as error:  # a missing or non-Parquet path
        raise InputError(
            f"Cannot read {path} as a features file ({str(error).splitlines()[0]}); expected the Parquet "
            "folder written by 'deepframes featurize'."
        ) from None
    missing = [name for name in ("label", "features") if name not in frame.columns]
    if missing:
        raise InputError(
            f"{path} has no {' or '.join(repr(name) for name in missing)} column (columns: {frame.columns}); "
            "expected features with labels. Run 'deepframes featurize IMAGES --label filename|folder'."
        )
    return frame.where(F.col("label").isNotNull() & F.col("features").isNotNull())


def load_features(path: str | Path, spark: SparkSession) -> Features:
    """Read a features file into NumPy on the driver (vector or array ``features`` column)."""
    frame = features_frame(path, spark)
    column = F.col("features")
    if isinstance(frame.schema["features"].dataType, VectorUDT):
        column = vector_to_array(column, "float32")
    paths = F.col("path") if "path" in frame.columns else F.lit(None).cast("string")
    table = frame.select(column.alias("features"), F.col("label").cast("string"), paths.alias("path")).toArrow()
    flat = table.column("features").combine_chunks()
    num_rows = len(flat)
    matrix = np.asarray(flat.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
    matrix = matrix.reshape(num_rows, -1) if num_rows else np.zeros((0, 0), np.float32)
    return Features(matrix, np.asarray(table.column("label").to_pylist(), dtype=object),
                    np.asarray(table.column("path").to_pylist(), dtype=object), read_featurizer(path, spark))
