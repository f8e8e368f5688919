"""Pillow images to 8-bit NumPy pixels: every mode normalised to grayscale, RGB or RGBA.

This is the one place that decides how an unusual pixel mode (palette, CMYK, 16-bit, float)
becomes 8-bit channels; file decoding and PIL conversion both go through it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# Modes Pillow converts exactly to one of the three layouts we store.
_TO_GRAY = {"1": "L", "L": "L"}
_TO_RGB = {"RGB": "RGB", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB", "RGBX": "RGB"}
_TO_RGBA = {"RGBA": "RGBA", "RGBa": "RGBA", "LA": "RGBA", "La": "RGBA", "PA": "RGBA"}


class UnsupportedPixelModeError(ValueError):
    """Raised for a Pillow pixel mode deepframes cannot turn into 8-bit channels."""


def _high_bit_depth_to_gray(image: Image.Image) -> Image.Image:
    """16-bit, 32-bit integer and float grayscale to 8-bit, keeping the full range of the source."""
    values = np.asarray(image)
    if image.mode == "F":
        scale = 255.0 if values.size and np.nanmax(values) <= 1.0 else 1.0
        values = np.nan_to_num(values.astype(np.float64) * scale)
    elif image.mode.startswith("I;16") or (values.size and values.max() > 255):
        values = values.astype(np.float64) / 257.0  # 65535 -> 255
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))


def normalize_mode(image: Image.Image) -> Image.Image:
    """Return ``image`` converted to ``L``, ``RGB`` or ``RGBA`` (alpha is kept, never dropped).

    >>> normalize_mode(Image.new("CMYK", (2, 2))).mode
    'RGB'
    """
    mode = image.mode
    if mode in ("L", "RGB", "RGBA"):
        return image
    if mode == "P":
        has_alpha = "transparency" in image.info or image.palette.mode == "RGBA"
        return image.convert("RGBA" if has_alpha else "RGB")
    for table in (_TO_GRAY, _TO_RGB, _TO_RGBA):
        if mode in table:
            return image.convert(table[mode])
    if mode.startswith("I") or mode == "F":
        return _high_bit_depth_to_gray(image)
    raise UnsupportedPixelModeError(
        f"unsupported pixel mode {mode!r}; expected a grayscale, palette, RGB(A), CMYK, "
        "16-bit or float image"
    )


def pil_to_pixels(image: Image.Image) -> np.ndarray:
    """HWC uint8 pixels in RGB/RGBA order (HW1 for grayscale) from any supported Pillow image."""
    pixels = np.asarray(normalize_mode(image), dtype=np.uint8)
    return pixels[:, :, np.newaxis] if pixels.ndim == 2 else pixels


def pixels_to_pil(pixels: np.ndarray) -> Image.Image:
    """A Pillow image from HWC uint8 pixels in RGB/RGBA order (or HW1/HW grayscale)."""
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    # Pillow infers L, RGB or RGBA from a uint8 array's shape.
    return Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))
