"""The demo job behind ``make demo``: make a small labelled image set, then read it back."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..images import read_images, to_numpy
from ..images.summary import ImageSummary, summarize_images
from ..session import session

logger = logging.getLogger(__name__)

SHAPES = ("circle", "square", "triangle")
# Every format and pixel layout read_images promises, in rotation over the demo images.
_FORMATS = (
    ("jpg", "JPEG", "RGB"),
    ("png", "PNG", "RGBA"),
    ("gif", "GIF", "P"),
    ("bmp", "BMP", "RGB"),
    ("webp", "WEBP", "RGB"),
    ("tiff", "TIFF", "CMYK"),
    ("png", "PNG", "L"),
    ("JPG", "JPEG", "CMYK"),
)
DEMO_SIZE = (64, 64)


@dataclass
class DemoResult:
    """Where the demo wrote its images, and what reading them back found."""

    image_folder: str
    num_written: int
    summary: ImageSummary
    sample_shape: tuple[int, ...]
    seconds: float
    master: str

    def as_dict(self) -> dict:
        return {
            "image_folder": self.image_folder,
            "num_written": self.num_written,
            "sample_shape": list(self.sample_shape),
            "seconds": round(self.seconds, 2),
            "master": self.master,
            **self.summary.as_dict(),
        }


def _draw_shape(shape: str, rng: np.random.Generator) -> Image.Image:
    width, height = (int(side) for side in rng.integers(80, 200, size=2))
    background = tuple(int(v) for v in rng.integers(0, 90, size=3))
    colour = tuple(int(v) for v in rng.integers(140, 256, size=3))
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    half = int(min(width, height) * rng.uniform(0.25, 0.45))
    cx, cy = width // 2, height // 2
    if shape == "circle":
        draw.ellipse((cx - half, cy - half, cx + half, cy + half), fill=colour)
    elif shape == "square":
        draw.rectangle((cx - half, cy - half, cx + half, cy + half), fill=colour)
    else:
        draw.polygon([(cx, cy - half), (cx - half, cy + half), (cx + half, cy + half)], fill=colour)
    return image


def write_demo_images(folder: str | Path, per_shape: int = 8, seed: int = 0) -> list[Path]:
    """Write ``per_shape`` pictures of each shape, one folder per shape, in many formats and modes.

    One deliberately broken file (``square/broken.jpg``, text) shows how unreadable files
    are reported. Returns the paths written.

    >>> import tempfile
    >>> len(write_demo_images(tempfile.mkdtemp(), per_shape=2))
    7
    """
    rng = np.random.default_rng(seed)
    root = Path(folder)
    written = []
    for shape in SHAPES:
        (root / shape).mkdir(parents=True, exist_ok=True)
        for number in range(per_shape):
            extension, image_format, mode = _FORMATS[(number + SHAPES.index(shape)) % len(_FORMATS)]
            target = root / shape / f"{shape}_{number}.{extension}"
            _draw_shape(shape, rng).convert(mode).save(target, format=image_format)
            written.append(target)
    broken = root / "square" / "broken.jpg"
    broken.write_text("this is text, not a JPEG\n")
    written.append(broken)
    return written


def run_demo(out_dir: str | Path = "deepframes-demo", master: str | None = None) -> DemoResult:
    """Write the demo images under ``out_dir``, read them back with ``read_images``, summarise.

    Examples
    --------
    >>> import tempfile
    >>> result = run_demo(tempfile.mkdtemp(), master="local[2]")
    >>> (result.summary.num_images, result.summary.num_labels, result.summary.num_errors)
    (24, 3, 1)
    """
    started = time.perf_counter()
    image_folder = Path(out_dir).resolve() / "images"
    written = write_demo_images(image_folder)
    logger.info("wrote %d demo images under %s", len(written), image_folder)
    spark = session(master)
    images = read_images(str(image_folder), label="folder", size=DEMO_SIZE, spark=spark)
    summary = summarize_images(images)
    sample = images.where("error IS NULL").select("image").first()
    sample_shape = to_numpy(sample["image"]).shape
    return DemoResult(
        image_folder=str(image_folder),
        num_written=len(written),
        summary=summary,
        sample_shape=sample_shape,
        seconds=time.perf_counter() - started,
        master=spark.sparkContext.master,
    )
