"""Small JPEG thumbnails of photos, made on the executors: what reports and the web page show.

A thumbnail is a JPEG of at most ``THUMBNAIL_PIXELS`` on its longer side (about 3 KB), made with
Pillow's draft mode (a JPEG is decoded at a reduced scale). ``thumbnails`` reads the files through
Spark (``read_images(decode=False)``: any Hadoop path, read where the executors are) and brings
back only the thumbnails, so the driver never needs to see the photos themselves.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Sequence

import pyarrow as pa
from PIL import Image, UnidentifiedImageError
from pyspark.sql import SparkSession

from .. import storage

logger = logging.getLogger(__name__)

THUMBNAIL_PIXELS = 128
_QUALITY = 80


def thumbnail(content: bytes, pixels: int = THUMBNAIL_PIXELS) -> bytes | None:
    """A JPEG of the photo ``content`` at most ``pixels`` on its longer side; None when it is no
    image Pillow reads.

    >>> import io
    >>> from PIL import Image
    >>> photo = io.BytesIO()
    >>> Image.new("RGB", (640, 480), "orange").save(photo, "PNG")
    >>> Image.open(io.BytesIO(thumbnail(photo.getvalue()))).size
    (128, 96)
    >>> thumbnail(b"not a photo") is None
    True
    """
    try:
        with Image.open(io.BytesIO(content)) as image:
            image.draft("RGB", (pixels, pixels))
            image.thumbnail((pixels, pixels))
            small = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    out = io.BytesIO()
    small.save(out, "JPEG", quality=_QUALITY)
    return out.getvalue()


def _thumbnail_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        paths, contents = batch.column("path"), batch.column("content").to_pylist()
        small = [thumbnail(content) if content else None for content in contents]
        yield pa.RecordBatch.from_arrays([paths, pa.array(small, pa.binary())], names=["path", "thumbnail"])


def thumbnails(paths: Sequence[str], spark: SparkSession) -> dict[str, bytes]:
    """``path -> JPEG thumbnail`` of the photos at ``paths`` (any Hadoop paths); a path that is
    missing or no image Pillow reads is left out (features copied from another machine name
    photos that are not here: their thumbnails are simply missing).

    >>> import deepframes
    >>> spark = deepframes.session("local[2]")
    >>> small = thumbnails(["../shared/data/pets/images/Bengal_10.jpg"], spark)
    >>> [(path.rsplit("/", 1)[1], data[:2]) for path, data in small.items()]
    [('Bengal_10.jpg', b'\\xff\\xd8')]
    """
    from .reader import read_images

    wanted = storage.maybe_present(paths)
    if not wanted:
        return {}
    try:
        files = read_images(wanted, decode=False, extensions=None, spark=spark)
    except FileNotFoundError as error:  # a URI that is gone
        logger.warning("No thumbnails: %s", error)
        return {}
    rows = files.select("path", "content").mapInArrow(_thumbnail_batches, "path string, thumbnail binary").toArrow()
    return {path: data for path, data in zip(rows.column("path").to_pylist(), rows.column("thumbnail").to_pylist())
            if data is not None}


__all__ = ["THUMBNAIL_PIXELS", "thumbnail", "thumbnails"]
