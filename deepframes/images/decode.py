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

# Pillow's own refusal starts at 2 x 89.5 million pixels (a warning at 89.5 million); a phone
# camera's largest photos are about 50 million (8160 x 6120), so that is the default of the
# services that take photos from anyone.
PHONE_MAX_PIXELS = 50_000_000
# Pixel modes whose values can be averaged 2x2, 3x3... (``Image.reduce``): not palette indices
# ("P", "PA"), not bilevel ("1"), and 16-bit modes only once widened to 32-bit ("I").
_REDUCIBLE = {"L", "LA", "La", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "I", "F"}


class ImageDecodeError(ValueError):
    """An encoded image that cannot be turned into pixels; the message says why."""


class NotAnImageError(ImageDecodeError):
    """Bytes in no image format Pillow reads (as opposed to an image that is damaged)."""


class ImageTooLargeError(ImageDecodeError):
    """An image with more pixels than allowed (``max_pixels``, or Pillow's decompression-bomb
    limit ``PIL.Image.MAX_IMAGE_PIXELS``): refused from its header, before it is decoded.
    ``width`` and ``height`` are the header's, when known."""

    def __init__(self, message: str, width: int | None = None, height: int | None = None) -> None:
        super().__init__(message)
        self.width, self.height = width, height


def resample_filter(name: str) -> Image.Resampling:
    """The Pillow filter for a resampling name such as ``"bilinear"``."""
    try:
        return RESAMPLE_FILTERS[name]
    except KeyError:
        raise ValueError(
            f"Invalid value received for argument `resample`. Expected one of "
            f"{sorted(RESAMPLE_FILTERS)}. Received: resample={name!r}"
        ) from None


def _open(data: bytes, max_pixels: int | None = None) -> Image.Image:
    """The image with its header read and its pixels not yet decoded; refused when it has more
    pixels than ``max_pixels`` or than Pillow decodes safely."""
    if len(data) == 0:
        raise ImageDecodeError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Checked below, where the message can name the size and the limit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise NotAnImageError(
            f"not an image: the first bytes {bytes(data[:8])!r} match no format Pillow reads "
            "(JPEG, PNG, GIF, BMP, TIFF, WebP, ...)"
        ) from None
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(f"image too large to decode safely: {error}") from None
    width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            f"image too large: {width}x{height} = {width * height / 1e6:.1f} million pixels, over the "
            f"limit of {max_pixels / 1e6:g} million (max_pixels={max_pixels}); not decoded", width, height
        )
    if Image.MAX_IMAGE_PIXELS is not None and width * height > Image.MAX_IMAGE_PIXELS:
        raise ImageTooLargeError(
            f"image too large to decode safely: {width}x{height} = {width * height / 1e6:.1f} million "
            f"pixels, over Pillow's decompression-bomb limit of {Image.MAX_IMAGE_PIXELS / 1e6:.1f} million "
            "(PIL.Image.MAX_IMAGE_PIXELS)", width, height
        )
    return image


def _check_max_pixels(max_pixels: int | None) -> None:
    if max_pixels is not None and (isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1):
        raise ValueError(
            "Invalid value received for argument `max_pixels`. Expected a positive integer (or None "
            f"for Pillow's own limit). Received: max_pixels={max_pixels!r}"
        )


def check_image_header(data: bytes, max_pixels: int | None = None) -> tuple[str, int, int]:
    """``(format, width, height)`` read from an encoded image's header, without decoding it.

    Parameters
    ----------
    data : bytes
        The file's content.
    max_pixels : int, optional
        Refuse images with more pixels than this.

    Returns
    -------
    tuple of (str, int, int)
        Pillow's format name (``"JPEG"``, ``"PNG"``...), the width and the height.

    Raises
    ------
    ImageTooLargeError
        When ``width * height`` is over ``max_pixels``.
    ImageDecodeError
        When the bytes are empty or in no format Pillow reads.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> buffer = io.BytesIO()
    >>> Image.new("RGB", (4000, 3000)).save(buffer, format="PNG")
    >>> check_image_header(buffer.getvalue())
    ('PNG', 4000, 3000)
    >>> check_image_header(buffer.getvalue(), max_pixels=10_000_000)
    Traceback (most recent call last):
    ...
    deepframes.images.decode.ImageTooLargeError: image too large: 4000x3000 = 12.0 million pixels, over the limit of 10 million (max_pixels=10000000); not decoded
    """
    _check_max_pixels(max_pixels)
    try:
        image = _open(data, max_pixels)
    except ImageDecodeError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageDecodeError(f"corrupt image header: {error}") from None
    return image.format or "image", image.width, image.height


def _reduce_before_converting(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Shrink a decoded image by a whole factor towards ``size`` before any full-size copy.

    Turning, mode conversion and resizing each copy the image; on a 50-megapixel PNG each copy
    is 200 MB. ``Image.reduce`` averages blocks of pixels into a much smaller image first, kept
    at least twice as large as ``size`` in both directions whichever way the EXIF orientation
    turns it, so the final resize still sees several pixels per output pixel (Pillow's
    ``reducing_gap=2``, "indistinguishable from fair resampling in most cases").
    """
    factor = min(image.size) // (2 * max(size))
    if factor < 2:
        return image
    if image.mode.startswith("I;16"):  # reduced as 32-bit, then 16-bit again: 16-bit values are scaled later
        return image.convert("I").reduce(factor).convert("I;16")
    if image.mode not in _REDUCIBLE:
        return image
    return image.reduce(factor)


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
    max_pixels: int | None = None,
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
    max_pixels : int, optional
        Refuse images whose header declares more pixels than this, before decoding them
        (``ImageTooLargeError``). None: only Pillow's decompression-bomb limit (about 179
        million pixels) applies. A photo of ``max_pixels`` pixels takes up to 4 bytes per pixel
        while it is decoded; with ``size`` the image is shrunk before any further copy, and JPEGs
        are decoded at 1/2, 1/4 or 1/8 scale directly.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array of shape ``(height, width, channels)`` with 1, 3 or 4 channels.

    Raises
    ------
    ImageDecodeError
        With the reason: empty file, not an image, truncated or corrupt data, unsupported mode;
        ``ImageTooLargeError`` (a subclass) for more pixels than ``max_pixels``.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> buffer = io.BytesIO()
    >>> Image.new("RGB", (40, 30), "red").save(buffer, format="PNG")
    >>> decode_image(buffer.getvalue(), size=(10, 20)).shape
    (10, 20, 3)
    """
    _check_max_pixels(max_pixels)
    resample_filter(resample)
    image_format = "image"
    try:
        image = _open(data, max_pixels)
        image_format = image.format or image_format
        if size is not None:
            _request_reduced_jpeg(image, size)
        image.load()
        if size is not None:
            image = _reduce_before_converting(image, size)
        # In place: with no turn to make, exif_transpose would otherwise copy the whole image.
        ImageOps.exif_transpose(image, in_place=True)
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as error:  # a GIF or TIFF frame larger than its header said
        raise ImageTooLargeError(f"image too large to decode safely: {error}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageDecodeError(f"truncated or corrupt {image_format} data: {error}") from None
    try:
        image = normalize_mode(image)
    except UnsupportedPixelModeError as error:
        raise ImageDecodeError(str(error)) from None
    if size is not None and image.size != (size[1], size[0]):
        image = image.resize((size[1], size[0]), resample_filter(resample))
    return pil_to_pixels(image)
