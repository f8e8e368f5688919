"""Image struct columns to model-ready batches: decode the struct, resize, lay out, normalise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from PIL import Image


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
        """(n, h, w, 3) float32 RGB 0-255 -> the model's input."""
        if self.channel_order == "BGR":
            batch = batch[..., ::-1]
        batch = (batch - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        if self.layout == "NCHW":
            batch = batch.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(batch, dtype=np.float32)


def _rgb_pixels(height: int, width: int, channels: int, data: bytes) -> np.ndarray:
    """Struct pixels (BGR/BGRA/gray) as HWC RGB uint8."""
    pixels = np.frombuffer(data, dtype=np.uint8).reshape(height, width, channels)
    if channels == 1:
        return np.repeat(pixels, 3, axis=2)
    return pixels[..., 2::-1]  # BGR(A) -> RGB, alpha dropped


def images_to_batch(images: pa.Array, preset: ImagePreset) -> np.ndarray:
    """A null-free struct array of images -> float32 batch for the model (any input sizes)."""
    height, width = preset.size
    fields = {name: images.field(name) for name in ("height", "width", "nChannels", "data")}
    heights = fields["height"].to_numpy()
    widths = fields["width"].to_numpy()
    channels = fields["nChannels"].to_numpy()
    datas = fields["data"]
    batch = np.empty((len(images), height, width, 3), dtype=np.float32)
    for index in range(len(images)):
        pixels = _rgb_pixels(int(heights[index]), int(widths[index]), int(channels[index]),
                             datas[index].as_buffer())
        if pixels.shape[:2] != (height, width):
            pixels = np.asarray(Image.fromarray(pixels).resize((width, height), Image.Resampling.BILINEAR))
        batch[index] = pixels
    return preset.normalise(batch)


def is_image_struct(array_type: pa.DataType) -> bool:
    return pa.types.is_struct(array_type) and {f.name for f in array_type} >= {"height", "width", "nChannels", "data"}
