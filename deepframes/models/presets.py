"""Image columns to model-ready batches: decode, resize, lay out, normalise.

An image column is either the struct ``read_images`` gives, or the encoded files themselves
(``read_images(..., decode=False)`` or ``binaryFile``'s ``content``), decoded here straight to the
model's size so the pixels never travel back through the JVM.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from PIL import Image

from ..images.decode import ImageDecodeError, decode_image


@dataclass(frozen=True)
class ImagePreset:
    """How a model wants its images: size, layout, colour order and normalisation.

    Pixels are 0-255 floats in ``channel_order``; then ``(x - mean) / std`` per channel.
    """

    size: tuple[int, int] = (224, 224)
    layout: str = "NHWC"
    channel_order: str = "RGB"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def normalise(self, batch: np.ndarray) -> np.ndarray:
        """(n, h, w, 3) RGB 0-255 -> the model's input (used where no struct is at hand)."""
        channels = batch[..., ::-1] if self.channel_order == "BGR" else batch
        out = np.empty(self._shape(len(batch)), dtype=np.float32)
        out[...] = channels.transpose(0, 3, 1, 2) if self.layout == "NCHW" else channels
        return self._scale(out)

    def batch_from_structs(self, images: pa.Array) -> np.ndarray:
        """A null-free struct array of images (any sizes) -> the model's float32 input batch.

        Each image is written once, straight into the final layout and colour order (the struct
        holds BGR, so BGR models take the bytes as they are); normalising then runs in place.
        """
        height, width = self.size
        heights = images.field("height").to_numpy()
        widths = images.field("width").to_numpy()
        channels = images.field("nChannels").to_numpy()
        datas = images.field("data")
        out = np.empty(self._shape(len(images)), dtype=np.float32)
        for index in range(len(images)):
            pixels = np.frombuffer(datas[index].as_buffer(), dtype=np.uint8).reshape(
                int(heights[index]), int(widths[index]), int(channels[index])
            )
            pixels = self._channels(pixels)
            if pixels.shape[:2] != (height, width):
                pixels = _resize(pixels, height, width)
            out[index] = pixels.transpose(2, 0, 1) if self.layout == "NCHW" else pixels
        return self._scale(out)

    def batch_from_files(self, contents: pa.Array, column: str = "content") -> tuple[np.ndarray, dict[int, str]]:
        """A null-free binary array of encoded image files -> ``(batch, failures)``.

        ``batch`` has one row per file (zeros where a file could not be decoded) and ``failures``
        maps the index of each file that could not be decoded to the reason (also logged on the
        executor). JPEGs are decoded at reduced scale when the model's size allows it.
        """
        out = np.empty(self._shape(len(contents)), dtype=np.float32)
        failures: dict[int, str] = {}
        for index in range(len(contents)):
            try:
                pixels = decode_image(contents[index].as_buffer(), self.size)
            except ImageDecodeError as error:
                out[index] = 0.0
                failures[index] = str(error)
                continue
            pixels = _rgb(pixels)
            if self.channel_order == "BGR":
                pixels = pixels[..., ::-1]
            out[index] = pixels.transpose(2, 0, 1) if self.layout == "NCHW" else pixels
        return self._scale(out), failures

    def _shape(self, rows: int) -> tuple[int, ...]:
        height, width = self.size
        return (rows, 3, height, width) if self.layout == "NCHW" else (rows, height, width, 3)

    def _scale(self, out: np.ndarray) -> np.ndarray:
        """(x - mean) / std per channel, in place, skipping what would change nothing."""
        axis_shape = (3, 1, 1) if self.layout == "NCHW" else (3,)
        if any(self.mean):
            out -= np.asarray(self.mean, np.float32).reshape(axis_shape)
        if any(value != 1.0 for value in self.std):
            out /= np.asarray(self.std, np.float32).reshape(axis_shape)
        return out

    def _channels(self, pixels: np.ndarray) -> np.ndarray:
        """Struct pixels (BGR, BGRA or gray; HWC uint8) as 3 channels in this preset's order."""
        if pixels.shape[2] == 1:
            return np.repeat(pixels, 3, axis=2)
        return pixels[..., 2::-1] if self.channel_order == "RGB" else pixels[..., :3]


def _rgb(pixels: np.ndarray) -> np.ndarray:
    """Decoded pixels (gray, RGB or RGBA; HWC uint8) as three RGB channels."""
    if pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    return pixels[..., :3]


def _resize(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    resized = Image.fromarray(np.ascontiguousarray(pixels)).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized)


def is_image_struct(array_type: pa.DataType) -> bool:
    return pa.types.is_struct(array_type) and {f.name for f in array_type} >= {"height", "width", "nChannels", "data"}


def is_encoded_files(array_type: pa.DataType) -> bool:
    """A binary column, read as encoded image files."""
    return pa.types.is_binary(array_type) or pa.types.is_large_binary(array_type)
