"""``read_images``: image files (any Hadoop path) into a DataFrame of decoded image structs.

Files are listed and read by Spark's ``binaryFile`` source, so every file system Hadoop reaches
works; decoding runs in Python with Pillow inside ``mapInArrow``, on the executors.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Union
from urllib.parse import unquote, urlparse

import pyarrow as pa
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StringType, StructField, StructType

from ..session import default_parallelism, is_connect
from .convert import pixels_to_struct_fields
from .decode import ImageDecodeError, decode_image, resample_filter
from .labels import LabelRule, label_column, label_function
from .schema import IMAGE_STRUCT

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "gif", "bmp", "tif", "tiff", "webp")
ERROR_MODES = ("column", "drop", "raise")
# A partition holds at most this many files, so a task's memory stays small and work spreads.
MAX_FILES_PER_PARTITION = 64
# Files left encoded (decode=False) are small until a model's batch decodes them, so partitions
# hold more: fewer tasks, and a longer stream in each for decoding to overlap the model.
MAX_ENCODED_FILES_PER_PARTITION = 256
# Decoded rows are handed back to Spark in Arrow batches no larger than this.
_MAX_BATCH_ROWS = 64
_MAX_BATCH_BYTES = 64 * 1024 * 1024

_ARROW_IMAGE = pa.struct(
    [
        ("origin", pa.string()),
        ("height", pa.int32()),
        ("width", pa.int32()),
        ("nChannels", pa.int32()),
        ("mode", pa.int32()),
        ("data", pa.binary()),
    ]
)


class ImageReadError(ValueError):
    """Raised on an executor by ``read_images(errors="raise")`` for the first unreadable file."""


@dataclass(frozen=True)
class DecodeConfig:
    """What an executor needs to decode a partition of files (shipped with the task)."""

    size: tuple[int, int] | None
    resample: str
    errors: str
    label: Callable[[str], object] | None
    max_pixels: int | None = None
    rule: str | None = None  # the label rule when named ("folder", "filename"), for the JVM


class _BatchBuilder:
    """Collects decoded rows column by column and emits Arrow record batches."""

    def __init__(self, with_label: bool) -> None:
        self.with_label = with_label
        self.schema = pa.schema(
            [("path", pa.string()), ("image", _ARROW_IMAGE)]
            + ([("label", pa.string())] if with_label else [])
            + [("error", pa.string())]
        )
        self._reset()

    def _reset(self) -> None:
        self.paths: list[str] = []
        self.fields: list[tuple] = []
        self.labels: list[str | None] = []
        self.errors: list[str | None] = []
        self.num_bytes = 0

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def full(self) -> bool:
        return len(self) >= _MAX_BATCH_ROWS or self.num_bytes >= _MAX_BATCH_BYTES

    def append(self, path: str, fields: tuple | None, label: str | None, error: str | None) -> None:
        self.paths.append(path)
        self.fields.append(fields or (None,) * 5)
        self.labels.append(label)
        self.errors.append(error)
        self.num_bytes += len(fields[4]) if fields else 0

    def flush(self) -> pa.RecordBatch:
        heights, widths, channels, modes, datas = zip(*self.fields) if self.fields else ((),) * 5
        is_null = [fields[0] is None for fields in self.fields]
        children = [
            pa.array([None if null else path for path, null in zip(self.paths, is_null)], pa.string()),
            pa.array(heights, pa.int32()),
            pa.array(widths, pa.int32()),
            pa.array(channels, pa.int32()),
            pa.array(modes, pa.int32()),
            pa.array(datas, pa.binary()),
        ]
        image = pa.StructArray.from_arrays(
            children, fields=list(_ARROW_IMAGE), mask=pa.array(is_null, pa.bool_())
        )
        columns = [pa.array(self.paths, pa.string()), image]
        if self.with_label:
            columns.append(pa.array(self.labels, pa.string()))
        columns.append(pa.array(self.errors, pa.string()))
        batch = pa.RecordBatch.from_arrays(columns, schema=self.schema)
        self._reset()
        return batch


def _label_of(path: str, config: DecodeConfig) -> str | None:
    if config.label is None:
        return None
    try:
        value = config.label(path)
    except Exception as error:
        raise ValueError(
            f"The `label` function raised {type(error).__name__}: {error} on path {path!r}. "
            "Fix the function so that it returns a string (or None) for every path."
        ) from error
    return None if value is None else str(value)


def decode_partition(
    batches: Iterator[pa.RecordBatch], config: DecodeConfig
) -> Iterator[pa.RecordBatch]:
    """Decode ``(path, content)`` Arrow batches into ``(path, image, [label], error)`` batches."""
    builder = _BatchBuilder(with_label=config.label is not None)
    num_dropped, first_dropped = 0, None
    for batch in batches:
        paths = batch.column("path").to_pylist()
        contents = batch.column("content")
        for index, path in enumerate(paths):
            try:
                pixels = decode_image(contents[index].as_py(), config.size, config.resample, config.max_pixels)
                fields, error = pixels_to_struct_fields(pixels), None
            except ImageDecodeError as decode_error:
                fields, error = None, str(decode_error)
            except Exception as unexpected:  # a Pillow bug must not kill the whole job
                fields, error = None, f"cannot decode: {type(unexpected).__name__}: {unexpected}"
            if error is not None and config.errors == "raise":
                raise ImageReadError(
                    f"Cannot read image {path}: {error}. Pass errors='column' to keep unreadable "
                    "files as rows with the reason in `error`, or errors='drop' to skip them."
                )
            if error is not None and config.errors == "drop":
                num_dropped += 1
                first_dropped = first_dropped or f"{path} ({error})"
                continue
            builder.append(path, fields, _label_of(path, config), error)
            if builder.full:
                yield builder.flush()
    if len(builder) or not num_dropped:
        yield builder.flush()
    if num_dropped:
        logger.warning(
            "read_images dropped %d unreadable file(s) in this partition, e.g. %s",
            num_dropped,
            first_dropped,
        )


def label_partition(batches: Iterator[pa.RecordBatch], config: DecodeConfig) -> Iterator[pa.RecordBatch]:
    """Add the ``label`` column to ``(path, content)`` batches, leaving the files encoded."""
    for batch in batches:
        labels = [_label_of(path, config) for path in batch.column("path").to_pylist()]
        yield pa.RecordBatch.from_arrays(
            [batch.column("path"), batch.column("content"), pa.array(labels, pa.string())],
            names=["path", "content", "label"],
        )


def output_schema(with_label: bool) -> StructType:
    """The Spark schema of ``read_images``' result."""
    fields = [StructField("path", StringType(), False), StructField("image", IMAGE_STRUCT, True)]
    if with_label:
        fields.append(StructField("label", StringType(), True))
    fields.append(StructField("error", StringType(), True))
    return StructType(fields)


def plan_partitions(num_files: int, parallelism: int, max_files: int = MAX_FILES_PER_PARTITION) -> int:
    """How many partitions to decode ``num_files`` files in.

    Every core gets work, no partition holds more than ``max_files`` files, and the count is a
    multiple of the parallelism so the last wave of tasks is full.

    >>> plan_partitions(600, 2), plan_partitions(3, 8), plan_partitions(10_000, 16)
    (10, 3, 160)
    >>> plan_partitions(600, 2, max_files=MAX_ENCODED_FILES_PER_PARTITION)
    4
    """
    wanted = max(parallelism, math.ceil(num_files / max_files))
    wanted = math.ceil(wanted / parallelism) * parallelism
    return max(1, min(num_files, wanted))


def _extension_glob(extensions: Sequence[str]) -> str:
    """A Hadoop glob matching file names with any of ``extensions``, in any letter case."""
    alternatives = []
    for extension in extensions:
        letters = extension.lower().lstrip(".")
        alternatives.append(
            "".join(f"[{c}{c.upper()}]" if c.isalpha() else c for c in letters)
        )
    return "*.{" + ",".join(alternatives) + "}"


def _as_path_list(path: PathLike | Sequence[PathLike]) -> list[str]:
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths:
        raise ValueError("read_images needs at least one path. Received an empty list.")
    return [os.fspath(item) for item in paths]


def _empty_local_files(uris: Sequence[str]) -> list[str]:
    """Local files of zero bytes, as ``binaryFile`` names them (``file:/x``).

    Spark's file scan skips zero-byte files without a word; we put them back so that they get
    a row with an error instead of vanishing. (On other file systems they are still skipped.)
    """
    empty = []
    for uri in uris:
        if not uri.startswith("file:"):
            continue
        local_path = unquote(urlparse(uri).path)
        try:
            if os.stat(local_path).st_size == 0:
                empty.append("file:" + local_path)
        except OSError:
            continue  # not on this machine's disk (a cluster path); Spark reads it as usual
    return empty


def _check_size(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(side, int) and side > 0 for side in pair):
        raise ValueError(
            "Invalid value received for argument `size`. Expected (height, width) as two positive "
            f"integers, or one integer for a square. Received: size={size!r}"
        )
    return pair  # type: ignore[return-value]


def _check_choice(name: str, value: object, choices: Sequence[object]) -> None:
    if value not in choices:
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected one of {list(choices)}. "
            f"Received: {name}={value!r}"
        )


def _list_files(
    spark: SparkSession, paths: list[str], recursive: bool, extensions: Sequence[str] | None
) -> DataFrame:
    reader = spark.read.format("binaryFile").option("recursiveFileLookup", str(recursive).lower())
    if extensions is not None:
        reader = reader.option("pathGlobFilter", _extension_glob(extensions))
    try:
        return reader.load(paths)
    except AnalysisException as error:
        if "PATH_NOT_FOUND" in str(error) or "does not exist" in str(error):
            missing = str(error).split("Path does not exist:", 1)[-1].split(". SQLSTATE")[0]
            raise FileNotFoundError(
                f"read_images: no such file or folder:{missing}. Check the path (globs such as "
                "'photos/*.jpg' and URIs such as 'hdfs://...' work)."
            ) from None
        raise


def read_images(
    path: PathLike | Sequence[PathLike],
    *,
    recursive: bool = True,
    label: LabelRule | None = None,
    size: int | tuple[int, int] | None = None,
    resample: str = "bilinear",
    errors: str = "column",
    extensions: Sequence[str] | None = IMAGE_EXTENSIONS,
    num_partitions: int | None = None,
    decode: bool = True,
    max_pixels: int | None = None,
    spark: SparkSession | None = None,
) -> DataFrame:
    """Read image files into a DataFrame with an image struct column.

    Parameters
    ----------
    path : str, os.PathLike or a list of them
        Folders, files or globs; local paths or any URI Hadoop reads (``file://``, ``hdfs://``,
        ``s3a://``). Spark skips files whose names start with ``_`` or ``.``.
    recursive : bool
        Look into subfolders of the folders given.
    label : str or callable, optional
        ``"folder"`` (parent folder's name), ``"filename"`` (``american_bulldog_10.jpg`` ->
        ``american_bulldog``), a regular expression with one group applied to the file name
        (no match gives null), or a function of the path. None: no ``label`` column.
    size : int or (height, width), optional
        Resize while reading. JPEGs are decoded at reduced scale first when much larger.
    resample : str
        Resize filter: ``"bilinear"`` (default), ``"nearest"``, ``"bicubic"``, ``"lanczos"``,
        ``"box"`` or ``"hamming"``.
    errors : {"column", "drop", "raise"}
        Unreadable files: kept with a null ``image`` and the reason in ``error`` (default),
        dropped (the number dropped is logged), or the job fails naming the file.
    extensions : sequence of str or None
        File extensions to read, matched in any letter case; None reads every file and tells
        the format from the bytes.
    num_partitions : int, optional
        Partitions to decode in; by default sized from the file count and the parallelism.
    decode : bool
        False leaves the files encoded, in a binary ``content`` column, for a stage that decodes
        them itself straight to its model's size (``ImageFeaturizer``, ``ImagePredictor``): the
        fastest way to featurize, as the pixels never travel back through the JVM. ``size``,
        ``resample``, ``errors`` and ``max_pixels`` apply to decoding and must keep their
        defaults then.
    max_pixels : int, optional
        Files whose header declares more pixels than this are not decoded: like any unreadable
        file they follow ``errors`` (by default a row with a null ``image`` and ``error``
        starting "image too large"). Bounds each task's memory: decoding takes up to 4 bytes
        per pixel (200 MB at 50 million) before ``size`` shrinks the image. None: only
        Pillow's decompression-bomb limit (about 179 million pixels) applies.
    spark : SparkSession, optional
        Defaults to the active session, or ``deepframes.session()``.

    Returns
    -------
    pyspark.sql.DataFrame
        Columns ``path`` (string), ``image`` (Spark ``ImageSchema`` struct, BGR pixels),
        ``label`` (string, only when ``label`` is given) and ``error`` (string, null when the
        file decoded). With ``decode=False``: ``path``, ``content`` (binary) and ``label``.

    Raises
    ------
    FileNotFoundError
        When a path does not exist.
    ValueError
        For bad arguments, or when no file with the wanted extensions is found.

    Examples
    --------
    >>> import deepframes
    >>> df = deepframes.read_images("../shared/data/pets/images", label="filename", size=64)
    >>> df.groupBy("label").count().orderBy("label").collect()[0]["count"]
    200
    """
    config = decode_config("read_images", label, size, resample, errors, decode, max_pixels)
    if num_partitions is not None and (not isinstance(num_partitions, int) or num_partitions < 1):
        raise ValueError(
            "Invalid value received for argument `num_partitions`. Expected a positive integer. "
            f"Received: num_partitions={num_partitions!r}"
        )
    if spark is None:
        from ..session import running_session, session

        spark = running_session() or session()
    paths = _as_path_list(path)
    files = _list_files(spark, paths, recursive, extensions)
    listed = files.inputFiles()
    num_files = len(listed)
    if num_files == 0:
        wanted = "any file" if extensions is None else f"files ending in {', '.join(extensions)}"
        hint = "extensions=None to read every file" + ("" if recursive else ", or recursive=True to look in subfolders")
        raise ValueError(
            f"read_images found no image files in {paths}: looked for {wanted}"
            f"{' in subfolders too' if recursive else ' (subfolders skipped)'}. Pass {hint}."
        )
    max_files = MAX_FILES_PER_PARTITION if decode else MAX_ENCODED_FILES_PER_PARTITION
    target = num_partitions or plan_partitions(num_files, default_parallelism(spark), max_files)
    files = files.select("path", "content")
    empty = _empty_local_files(listed)
    if empty:
        files = files.unionByName(spark.createDataFrame([(p, bytearray()) for p in empty], files.schema))
    # A Connect session cannot count partitions without running the scan: spread them all.
    current = -1 if is_connect(spark) else files.rdd.getNumPartitions()
    if current > target:
        files = files.coalesce(target)
    elif current < target:
        files = files.repartition(target)
    return images_of(files, config, decode)


def decode_config(caller: str, label: LabelRule | None, size: int | tuple[int, int] | None, resample: str,
                  errors: str, decode: bool, max_pixels: int | None = None) -> DecodeConfig:
    """The checked decoding arguments of ``read_images`` and ``stream_images`` (``caller``)."""
    _check_choice("errors", errors, ERROR_MODES)
    resample_filter(resample)
    if not decode and (size is not None or errors != "column" or resample != "bilinear" or max_pixels is not None):
        raise ValueError(
            f"{caller}(decode=False) leaves files encoded, so `size`, `resample`, `errors` and `max_pixels` "
            f"cannot apply. Received: size={size!r}, resample={resample!r}, errors={errors!r}, "
            f"max_pixels={max_pixels!r}. Drop them, or decode here with decode=True."
        )
    if max_pixels is not None and (isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1):
        raise ValueError(
            "Invalid value received for argument `max_pixels`. Expected a positive integer (or None). "
            f"Received: max_pixels={max_pixels!r}"
        )
    return DecodeConfig(size=_check_size(size), resample=resample, errors=errors, label=label_function(label),
                        max_pixels=max_pixels, rule=label if isinstance(label, str) else None)


def images_of(files: DataFrame, config: DecodeConfig, decode: bool) -> DataFrame:
    """``(path, content)`` rows (static or streaming) decoded to ``read_images``' columns, or,
    with ``decode=False``, left encoded with a ``label`` column when asked for."""
    if decode:
        return files.mapInArrow(
            functools.partial(decode_partition, config=config), output_schema(config.label is not None)
        )
    if config.label is None:
        return files
    in_the_jvm = label_column(config.rule) if config.rule is not None else None
    if in_the_jvm is not None:
        return files.withColumn("label", in_the_jvm)
    schema = StructType(list(files.schema.fields) + [StructField("label", StringType(), True)])
    return files.mapInArrow(functools.partial(label_partition, config=config), schema)
