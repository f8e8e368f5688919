"""``stream_images``: image files as they land in a folder (any Hadoop path), as a streaming
DataFrame with the columns ``read_images`` gives, for Spark Structured Streaming.

Files are found by Spark's ``binaryFile`` streaming source, which records in the query's
checkpoint which files it has handed out, so a restarted query neither repeats nor skips one.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import BinaryType, LongType, StringType, StructField, StructType, TimestampType

from .labels import LabelRule
from .reader import IMAGE_EXTENSIONS, PathLike, _extension_glob, decode_config, images_of

# The binaryFile source's columns; a streaming source needs its schema up front.
BINARY_FILE_SCHEMA = StructType([
    StructField("path", StringType(), False),
    StructField("modificationTime", TimestampType(), False),
    StructField("length", LongType(), False),
    StructField("content", BinaryType(), True),
])

# The file source forgets files older than maxFileAge (default 7 days) relative to the newest it
# has seen, and then skips them: a photo copied in with its old modification time (cp -p, unzip,
# a camera's card) would never be read. Keep every file eligible; the log of seen files grows
# by one entry per file.
_KEEP_EVERY_FILE = "36500d"


def stream_images(
    path: PathLike,
    *,
    recursive: bool = True,
    label: LabelRule | None = None,
    size: int | tuple[int, int] | None = None,
    resample: str = "bilinear",
    errors: str = "column",
    extensions: Sequence[str] | None = IMAGE_EXTENSIONS,
    max_files_per_trigger: int | None = None,
    decode: bool = True,
    max_pixels: int | None = None,
    spark: SparkSession | None = None,
) -> DataFrame:
    """Image files arriving in a folder, as a streaming DataFrame.

    The streaming twin of ``read_images``: the same columns, decoded (or left encoded) the same
    way, for files that land in ``path`` while the query runs. Write it with ``writeStream`` and a
    ``checkpointLocation``; the inference stages (``ImageFeaturizer``, ``ImagePredictor``,
    ``ModelTransformer``) and fitted pipelines transform it like a static DataFrame.

    Parameters
    ----------
    path : str or os.PathLike
        The folder to watch: a local path or any URI Hadoop reads (``hdfs://``, ``s3a://``...).
        Files must appear whole: write them elsewhere and move them in (a rename), or name
        them with a leading ``_`` or ``.`` while writing (Spark skips those).
    recursive : bool
        Look into subfolders too.
    label, size, resample, errors, extensions, decode, max_pixels
        As for ``read_images``; ``errors="raise"`` fails the query on the first unreadable file.
    max_files_per_trigger : int, optional
        At most this many new files per micro-batch (default: all that are there).
    spark : SparkSession, optional
        Defaults to the active session, or ``deepframes.session()``.

    Returns
    -------
    pyspark.sql.DataFrame
        A streaming DataFrame: ``path``, ``image``, [``label``], ``error``; with
        ``decode=False``: ``path``, ``content``, [``label``].

    Raises
    ------
    ValueError
        For bad arguments.

    Examples
    --------
    >>> import deepframes, shutil, tempfile
    >>> from deepframes.images.stream import stream_images
    >>> spark = deepframes.session("local[2]")
    >>> inbox, work = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> _ = shutil.copy("../shared/data/pets/images/Bengal_10.jpg", inbox)
    >>> images = stream_images(inbox, label="filename", size=32, spark=spark)
    >>> query = (images.writeStream.format("memory").queryName("arrived").trigger(availableNow=True)
    ...     .option("checkpointLocation", work).start())
    >>> query.awaitTermination()
    >>> [(row.label, row.image.height) for row in spark.table("arrived").collect()]
    [('Bengal', 32)]
    >>> shutil.rmtree(inbox); shutil.rmtree(work)
    """
    config = decode_config("stream_images", label, size, resample, errors, decode, max_pixels)
    if max_files_per_trigger is not None and (not isinstance(max_files_per_trigger, int) or max_files_per_trigger < 1):
        raise ValueError(
            "Invalid value received for argument `max_files_per_trigger`. Expected a positive integer. "
            f"Received: max_files_per_trigger={max_files_per_trigger!r}"
        )
    if spark is None:
        from ..session import running_session, session

        spark = running_session() or session()
    reader = (spark.readStream.format("binaryFile").schema(BINARY_FILE_SCHEMA)
              .option("recursiveFileLookup", str(recursive).lower())
              .option("maxFileAge", _KEEP_EVERY_FILE))
    if extensions is not None:
        reader = reader.option("pathGlobFilter", _extension_glob(extensions))
    if max_files_per_trigger is not None:
        reader = reader.option("maxFilesPerTrigger", str(max_files_per_trigger))
    return images_of(reader.load(str(path)).select("path", "content"), config, decode)


__all__ = ["BINARY_FILE_SCHEMA", "stream_images"]
