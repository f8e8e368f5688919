"""Images as DataFrame columns: reading files, the image struct, and conversions."""

from __future__ import annotations

from .convert import from_numpy as from_numpy
from .convert import from_pil as from_pil
from .convert import to_numpy as to_numpy
from .convert import to_pil as to_pil
from .decode import ImageDecodeError as ImageDecodeError
from .decode import decode_image as decode_image
from .reader import IMAGE_EXTENSIONS as IMAGE_EXTENSIONS
from .reader import ImageReadError as ImageReadError
from .reader import read_images as read_images
from .schema import IMAGE_STRUCT as IMAGE_STRUCT
from .stream import stream_images as stream_images

__all__ = [
    "IMAGE_EXTENSIONS",
    "IMAGE_STRUCT",
    "ImageDecodeError",
    "ImageReadError",
    "decode_image",
    "from_numpy",
    "from_pil",
    "read_images",
    "stream_images",
    "to_numpy",
    "to_pil",
]
