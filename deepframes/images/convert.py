"""Exact conversions between the image struct and NumPy arrays or Pillow images."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image
from pyspark.sql import Row

from .pixels import pil_to_pixels, pixels_to_pil
from .schema import IMAGE_FIELDS, ocv_mode

_LAYOUTS = ("HWC", "CHW")
_CHANNEL_ORDERS = ("RGB", "BGR")
_DTYPES = ("uint8", "float32")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected one of {list(choices)}. "
            f"Received: {name}={value!r}"
        )


def _field(image: Any, name: str) -> Any:
    return image[name] if isinstance(image, Mapping) else getattr(image, name)


def _swap_red_blue(pixels: np.ndarray) -> np.ndarray:
    """RGB <-> BGR and RGBA <-> BGRA; grayscale unchanged. The swap is its own inverse."""
    if pixels.shape[-1] == 3:
        return pixels[..., ::-1]
    if pixels.shape[-1] == 4:
        return pixels[..., [2, 1, 0, 3]]
    return pixels


def to_numpy(
    image: Any, layout: str = "HWC", channel_order: str = "RGB", dtype: str = "uint8"
) -> np.ndarray:
    """Pixels of an image struct value as a NumPy array.

    Parameters
    ----------
    image : Row or dict
        A value of the ``image`` column made by ``read_images`` (or Spark's image source).
    layout : {"HWC", "CHW"}
        Axis order. Grayscale images keep a channel axis of length 1.
    channel_order : {"RGB", "BGR"}
        Colour order of 3- and 4-channel images (alpha stays last). The struct stores BGR.
    dtype : {"uint8", "float32"}
        ``float32`` keeps the 0-255 values, only the type changes.

    Returns
    -------
    numpy.ndarray
        A new, writable array.

    Examples
    --------
    >>> image = from_numpy(np.zeros((2, 3, 3), dtype=np.uint8))
    >>> to_numpy(image, layout="CHW", dtype="float32").shape
    (3, 2, 3)
    """
    _check_choice("layout", layout, _LAYOUTS)
    _check_choice("channel_order", channel_order, _CHANNEL_ORDERS)
    _check_choice("dtype", dtype, _DTYPES)
    if image is None:
        raise ValueError("Cannot convert a null image; filter rows where `image` is null first.")
    height, width, channels = (int(_field(image, key)) for key in ("height", "width", "nChannels"))
    data = _field(image, "data")
    pixels = np.frombuffer(data, dtype=np.uint8)
    if pixels.size != height * width * channels:
        raise ValueError(
            f"Image struct data has {pixels.size} bytes; expected height*width*nChannels = "
            f"{height}*{width}*{channels} = {height * width * channels}."
        )
    pixels = pixels.reshape(height, width, channels)
    if channel_order == "RGB":
        pixels = _swap_red_blue(pixels)
    if layout == "CHW":
        pixels = pixels.transpose(2, 0, 1)
    return pixels.astype(np.dtype(dtype), copy=True)


_VALUE_RANGES = ("auto", "0-255", "0-1")


def _float_range(pixels: np.ndarray) -> str:
    """Floats in [0, 1] with a fractional value are unit-scaled; whole numbers are 0-255 values
    (what ``to_numpy(..., dtype="float32")`` gives, so the round trip stays exact)."""
    if pixels.size == 0 or np.isnan(pixels).any() or pixels.min() < 0 or pixels.max() > 1:
        return "0-255"
    return "0-1" if np.any(pixels != np.round(pixels)) else "0-255"


def _as_uint8(array: np.ndarray, value_range: str) -> np.ndarray:
    if array.dtype == np.uint8 and value_range != "0-1":
        return array
    if not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"Expected a numeric pixel array. Received dtype {array.dtype}.")
    floating = np.issubdtype(array.dtype, np.floating)
    taken_as = value_range
    if value_range == "auto":
        taken_as = _float_range(array) if floating else "0-255"
    top = 1.0 if taken_as == "0-1" else 255.0
    if floating and np.isnan(array).any():
        raise ValueError(
            "Pixel values must be numbers; the array holds NaN. Replace them (np.nan_to_num) first."
        )
    if array.size and (np.min(array) < 0 or np.max(array) > top):
        raise ValueError(
            f"Pixel values must lie in [0, {top:g}] with value_range={value_range!r} (read as "
            f"{taken_as}). Received values from {np.min(array)} to {np.max(array)}; rescale them "
            "into [0, 255] or [0, 1] first, or pass the value_range they are in."
        )
    scaled = array.astype(np.float64) * 255.0 if taken_as == "0-1" else array
    return np.rint(scaled).astype(np.uint8)


def from_numpy(
    array: np.ndarray,
    origin: str = "",
    layout: str = "HWC",
    channel_order: str = "RGB",
    value_range: str = "auto",
) -> Row:
    """An image struct value (a ``Row``) from pixels; the exact inverse of :func:`to_numpy`.

    Parameters
    ----------
    array : numpy.ndarray
        ``(height, width)``, or 3-D with 1, 3 or 4 channels: uint8, integers in [0, 255], or floats.
    origin : str
        Where the image came from (a path or URI).
    layout : {"HWC", "CHW"}
    channel_order : {"RGB", "BGR"}
    value_range : {"auto", "0-255", "0-1"}
        The range of the values. ``"0-1"`` scales them by 255; ``"0-255"`` takes them as they
        are. ``"auto"``: floats in [0, 1] with a fractional value are 0-1 (the usual float image),
        other arrays 0-255 (whole-number floats too, as :func:`to_numpy` gives them). Values are
        then rounded to the nearest integer; values outside the range raise ``ValueError``.
        Pass ``"0-1"`` for a float mask of only 0.0 and 1.0.

    Examples
    --------
    >>> image = from_numpy(np.full((2, 2, 3), 7, dtype=np.uint8), origin="mem://x")
    >>> (image.height, image.width, image.nChannels, image.mode)
    (2, 2, 3, 16)
    >>> to_numpy(from_numpy(np.full((1, 1, 3), 0.5)))[0, 0].tolist()  # floats in [0, 1]: scaled
    [128, 128, 128]
    """
    _check_choice("layout", layout, _LAYOUTS)
    _check_choice("channel_order", channel_order, _CHANNEL_ORDERS)
    _check_choice("value_range", value_range, _VALUE_RANGES)
    pixels = np.asarray(array)
    if pixels.ndim == 2:
        pixels = pixels[:, :, np.newaxis] if layout == "HWC" else pixels[np.newaxis]
    if pixels.ndim != 3:
        raise ValueError(f"Expected a 2-D or 3-D pixel array. Received shape {pixels.shape}.")
    if layout == "CHW":
        pixels = pixels.transpose(1, 2, 0)
    pixels = _as_uint8(pixels, value_range)
    if channel_order == "BGR":
        pixels = _swap_red_blue(pixels)
    return Row(**dict(zip(IMAGE_FIELDS, (origin, *pixels_to_struct_fields(pixels)))))


def to_pil(image: Any) -> Image.Image:
    """A Pillow image (``L``, ``RGB`` or ``RGBA``) from an image struct value.

    >>> to_pil(from_numpy(np.zeros((4, 5, 4), dtype=np.uint8))).mode
    'RGBA'
    """
    return pixels_to_pil(to_numpy(image))


def from_pil(image: Image.Image, origin: str = "") -> Row:
    """An image struct value from a Pillow image of any supported mode.

    >>> from_pil(Image.new("L", (5, 4))).nChannels
    1
    """
    return from_numpy(pil_to_pixels(image), origin=origin)


def pixels_to_struct_fields(pixels: np.ndarray) -> tuple[int, int, int, int, bytes]:
    """``(height, width, nChannels, mode, data)`` of HWC RGB(A) pixels, stored BGR(A) as Spark does."""
    height, width, channels = pixels.shape
    data = np.ascontiguousarray(_swap_red_blue(pixels)).tobytes()
    return height, width, channels, ocv_mode(channels), data
