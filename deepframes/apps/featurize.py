"""Image features plus labels and paths, in Parquet: the input of ``study`` and ``train``.

Beside the Parquet files, ``_deepframes.json`` records which network made the features (Spark
skips files starting with ``_``), so ``train`` can put the same featurizer in front of its model.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
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
from ..images.labels import label_function
from ..inference import ImageFeaturizer
from .errors import InputError, check_classes
from ..models.spec import file_digest
from .outputs import check_output, is_uri_file
from .progress import ImageCount
from .resumable import RUNNING, error_limit, finish_output, open_output, pending, write_rows

logger = logging.getLogger(__name__)

SIDECAR = "_deepframes.json"
DEFAULT_NETWORK = "squeezenet1.1"


@dataclass(frozen=True)
class FeaturizerConfig:
    """The network that made a features file, enough to rebuild its ``ImageFeaturizer``."""

    model: str
    weights: str | None
    pooling: str | None = "avg"

    def stage(self, input_col: str = "image") -> ImageFeaturizer:
        """The ``ImageFeaturizer`` these features came from, reading ``input_col``."""
        return ImageFeaturizer(inputCol=input_col, model=self.model, weights=self.weights, pooling=self.pooling)

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
    num_resumed: int = 0  # images an earlier run of the same output had done (``resume``)

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


def command_line_hint(message: str) -> str:
    """``read_images``' message with its Python hint replaced by one for the command line.

    >>> command_line_hint("read_images found no image files in ['x']: looked for files ending in jpg. "
    ...                   "Pass extensions=None to read every file.")
    "read_images found no image files in ['x']: looked for files ending in jpg. Check the path."
    """
    return message.replace("Pass extensions=None to read every file", "Check the path")


def encoded_images(images: str | list[str], label: str | None, spark: SparkSession) -> tuple[DataFrame, list[str]]:
    """The image files left encoded (``path, content[, label]``) and the paths listed."""
    try:
        files = read_images(images, label=label, decode=False, spark=spark)
    except (FileNotFoundError, ValueError) as error:  # no such path, no image files, a bad --label
        raise InputError(command_line_hint(str(error))) from None
    if label is not None:
        files = files.where(F.col("label").isNotNull())
    return files, files.inputFiles()


def _listed_classes(paths: list[str], label: str) -> dict[str, int]:
    """Images per class from the file names alone (no job): labels are functions of the path."""
    rule = label_function(label)
    return dict(Counter(str(name) for name in map(rule, paths) if name is not None))


def _log_failures(written: DataFrame) -> None:
    """Say why the first files that failed did (the reasons are in the output's ``error`` column)."""
    for row in written.where(F.col("error").isNotNull()).select("path", "error").limit(10).collect():
        logger.warning("skipped %s: %s", row.path, row.error)


def featurize_images(
    images: str | list[str],
    out: str | Path,
    *,
    model: str = DEFAULT_NETWORK,
    weights: str | None = None,
    label: str | None = "filename",
    spark: SparkSession,
    progress: Callable[[ImageCount], None] | None = None,
    resume: bool = False,
    max_errors: float | None = None,
) -> FeaturizeResult:
    """Featurize every image under ``images`` and write ``path, label, features, error`` to Parquet.

    The files stay encoded until the featurizer's own batches decode them, straight to the
    network's input size (``read_images(decode=False)``): the fastest path. A file that does not
    decode, or that the network fails on, gets a row with null features and the reason in
    ``error``; the count is reported and the first reasons logged. The output grows task by task
    (``apps.resumable``): a run that stopped (a crash, SIGKILL, Ctrl-C) continues with
    ``resume=True``, featurizing only the files no finished task wrote.

    Parameters
    ----------
    progress : callable, optional
        Called about twice a second with an ``ImageCount`` (images done, total, seconds) while
        the images are featurized, and once more at the end with ``final=True``.
    resume : bool
        Continue the unfinished (or finished) run in ``out``, which must have been written with
        the same model, weights and label rule; without it an unfinished ``out`` is refused.
    max_errors : int or float, optional
        Stop (``TooManyFailures``) once more rows than this failed: a count, or a share of the
        images below 1. The rows written are kept for ``resume``.

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
    files, paths = encoded_images(images, label, spark)
    where = ", ".join(images) if isinstance(images, list) else str(images)
    if label is not None:  # labelled features are for study and train: check them before any work
        check_classes(_listed_classes(paths, label), f"{where} (--label {label})")
    columns = ["path", "label", "features", "error"] if label is not None else ["path", "features", "error"]
    # The files to featurize: those the label rule names (the same rule Spark applies).
    expected = [path for path in paths if rule(path) is not None] if (rule := label_function(label)) else paths
    output = open_output(out, _options(config, label), resume=resume, spark=spark)
    todo = pending(expected, output)
    if output.done:
        logger.info("resuming %s: %d of %d images done before, %d to go", output.out, len(expected) - len(todo),
                    len(expected), len(todo))

    def rows() -> DataFrame:
        source = files if len(todo) == len(expected) else encoded_files(todo, label, spark)
        return config.stage(input_col="content").transform(source).select(*columns)

    if todo:
        write_rows(rows, output, len(todo), spark=spark, progress=progress,
                   max_errors=error_limit(max_errors, len(expected)))
    # One small job over what was written for every count.
    written = spark.read.parquet(output.out)
    summary = written.groupBy(*(["label"] if label is not None else [])).agg(
        F.count("features").alias("written"), F.count("error").alias("failed"),
        F.max(F.when(F.col("features").isNotNull(), F.size(vector_to_array("features")))).alias("size")).collect()
    num_images = sum(row.written for row in summary)
    num_failed = sum(row.failed for row in summary)
    if num_failed:
        _log_failures(written)
    counts = {row.label: row.written for row in summary if row.written} if label is not None else {}
    try:
        if num_images == 0:
            raise InputError(f"No readable images in {where}; all {num_failed} files failed to decode. Check the path.")
        if label is not None:
            check_classes(counts, f"{where} (--label {label}, readable images)")
    except InputError:  # no resumed run could make these features usable: nothing is left
        storage.delete(spark, output.out)
        raise
    num_features = max(row.size or 0 for row in summary)
    finish_output(output, spark, {SIDECAR: json.dumps({"featurizer": asdict(config), "label": label}, indent=2)})
    return FeaturizeResult(output_name(out), num_images, num_failed, num_features,
                           dict(sorted(counts.items(), key=lambda item: str(item[0]))),
                           time.perf_counter() - started, config, len(expected) - len(todo))


def _options(config: FeaturizerConfig, label: str | None) -> dict:
    """What a resumed run must share with the run it continues."""
    return {"command": "featurize", "model": config.model, "pooling": config.pooling, "label": label,
            "weights": file_digest(config.weights) if config.weights not in (None, "imagenet") else config.weights}


def encoded_files(paths: list[str], label: str | None, spark: SparkSession) -> DataFrame:
    """The listed files (``path, content[, label]``) left encoded, as ``encoded_images`` reads them.

    Listing many explicit local files is quicker on the driver than in Spark's parallel listing job.
    """
    serial = all(storage.is_local(path) for path in paths)
    with _sql_conf(spark, "spark.sql.sources.parallelPartitionDiscovery.threshold", str(len(paths) + 1)) \
            if serial else contextlib.nullcontext():
        return encoded_images(paths, label, spark)[0]


@contextlib.contextmanager
def _sql_conf(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    previous = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        spark.conf.unset(key) if previous is None else spark.conf.set(key, previous)


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


def features_frame(path: str | Path, spark: SparkSession, labelled: bool = True) -> DataFrame:
    """A features Parquet file as a DataFrame with a ``label`` and a ``features`` column (InputError
    otherwise); with ``labelled`` False, every row with features, labelled or not."""
    if is_uri_file(spark, str(path), RUNNING):
        raise InputError(
            f"{path} is an unfinished featurize run (interrupted or failed); finish it first: run the same "
            f"'deepframes featurize ... --out {path}' again with --resume."
        )
    try:
        frame = spark.read.parquet(str(path))
    except (PySparkException, Py4JError) as error:  # a missing or non-Parquet path
        raise InputError(
            f"Cannot read {path} as a features file ({str(error).splitlines()[0]}); expected the Parquet "
            "folder written by 'deepframes featurize'."
        ) from None
    missing = [name for name in ("label", "features")[0 if labelled else 1:] if name not in frame.columns]
    if missing:
        raise InputError(
            f"{path} has no {' or '.join(repr(name) for name in missing)} column (columns: {frame.columns}); "
            "expected features with labels. Run 'deepframes featurize IMAGES --label filename|folder'."
        )
    labels = F.col("label").isNotNull() if labelled else F.lit(True)
    return frame.where(labels & F.col("features").isNotNull())


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
