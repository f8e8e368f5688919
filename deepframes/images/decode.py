"""Decoding one encoded image file into 8-bit pixels, with a readable reason when it cannot be."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .pixels import UnsupportedPixelModeError, normalize_mode, pil_to_pixels

RESAMPLE_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}

class ImageDecodeError(ValueError):
    """An encoded image that cannot be turned into pixels; the message says why."""


def resample_filter(name: str) -> Image.Resampling:
    """The Pillow filter for a resampling name such as ``"bilinear"``."""
    try:
        return RESAMPLE_FILTERS[name]
    except KeyError:
        raise ValueError(
            f"Invalid value received for argument `resample`. Expected one of "
            f"{sorted(RESAMPLE_FILTERS)}. Received: resample={name!r}"
        ) from None


def _open(data: bytes) -> Image.Image:
    if len(data) == 0:
        raise ImageDecodeError("empty file (0 bytes)")
    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageDecodeError(
            f"not an image: the first bytes {bytes(data[:8])!r} match no format Pillow reads "
            "(JPEG, PNG, GIF, BMP, TIFF, WebP, ...)"
        ) from None


def _request_reduced_jpeg(image: Image.Image, size: tuple[int, int]) -> None:
    """Let libjpeg decode at 1/2, 1/4 or 1/8 scale when the target is that much smaller.

    The scaled decode stays at least as large as ``size`` in both directions, whichever way the
    EXIF orientation later turns the picture, so the final resize only ever shrinks.
    """
    if image.format != "JPEG":
        return
    side = max(size)
    image.draft(image.mode, (side, side))


def decode_image(
    data: bytes,
    size: tuple[int, int] | None = None,
    resample: str = "bilinear",
) -> np.ndarray:
    """Decode an encoded image into HWC uint8 pixels in RGB/RGBA order (HW1 for grayscale).

    The format is told from the bytes, never from a file name. EXIF orientation is applied,
    GIFs give their first frame, and palette, CMYK, 16-bit and float images become 8-bit
    grayscale, RGB or RGBA (alpha is kept).

    Parameters
    ----------
    data : bytes
        The file's content.
    size : tuple of int, optional
        ``(height, width)`` to resize to.
    resample : str
        ``"bilinear"`` (default), ``"nearest"``, ``"bicubic"``, ``"lanczos"``, ``"box"`` or
        ``"hamming"``.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array of shape ``(height, width, channels)`` with 1, 3 or 4 channels.

    Raises
    ------
    ImageDecodeError
        With the reason: empty file, not an image, truncated or corrupt data, unsupported mode.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> buffer = io.BytesIO()
    >>> Image.new("RGB", (40, 30), "red").save(buffer, format="PNG")
    >>> decode_image(buffer.getvalue(), size=(10, 20)).shape
    (10, 20, 3)
    """
    image_format = "image"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = _open(data)
            image_format = image.format or image_format
            if size is not None:
                _request_reduced_jpeg(image, size)
            image.load()
            image = ImageOps.exif_transpose(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageDecodeError(f"image too large to decode safely: {error}") from None
    except ImageDecodeError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageDecodeError(f"truncated or corrupt {image_format} data: {error}") from None
    try:
        image = normalize_mode(image)
    except UnsupportedPixelModeError as error:
        raise ImageDecodeError(str(error)) from None
    if size is not None and image.size != (size[1], size[0]):
        image = image.resize((size[1], size[0]), resample_filter(resample))
    return pil_to_pixels(image)
