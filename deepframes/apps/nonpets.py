"""Photos that are not pets, made from what ships inside installed packages: the set ``train``
measures its out-of-distribution test on (``metrics.json``), and the tests too.

Five kinds, named in the rates: real non-animal ``photos`` (scikit-learn's two sample photos;
with scikit-image installed, its non-animal data photos as well: the astronaut, the camera man,
coffee, coins, the moon, a rocket, brick, grass, text...; never its cats ``chelsea`` and ``cat``
or its horse), handwritten ``digits`` (scikit-learn), ``noise``, ``solid colours`` (from a 1x1
red pixel to a black 9000x9000 JPEG) and ``blurred pets`` (held-out photos blurred past
recognition: a Gaussian of radius 1/25 of the shorter side).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageFilter, UnidentifiedImageError

logger = logging.getLogger(__name__)

# scikit-image's data photos of no animal (its cats "chelsea" and "cat" and its horse are left out).
SKIMAGE_PHOTOS = ("astronaut", "brick", "camera", "cell", "clock", "coffee", "coins", "grass", "gravel",
                  "hubble_deep_field", "immunohistochemistry", "microaneurysms", "moon", "page", "retina",
                  "rocket", "text")
_COLOURS = {"black": (0, 0, 0), "white": (255, 255, 255), "red": (255, 0, 0), "green": (0, 160, 0),
            "blue": (0, 0, 255), "grey": (128, 128, 128), "yellow": (255, 255, 0), "cyan": (0, 255, 255),
            "brown": (120, 80, 40), "navy": (20, 40, 110)}

Photos = dict[str, list[tuple[str, bytes]]]


def _encoded(pixels: np.ndarray, kind: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, kind)
    return buffer.getvalue()


def _as_uint8(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype == bool:
        return values.astype(np.uint8) * 255
    if values.dtype != np.uint8:
        low, high = float(values.min()), float(values.max())
        values = (255 * (values - low) / max(high - low, 1e-12)).astype(np.uint8)
    return values[..., :3] if values.ndim == 3 else values


def real_photos() -> list[tuple[str, bytes]]:
    """scikit-learn's sample photos, and scikit-image's non-animal ones when it is installed."""
    from sklearn.datasets import load_sample_images

    sample = load_sample_images()
    photos = [(name.rsplit("/", 1)[-1], _encoded(image, "JPEG")) for name, image in zip(sample.filenames, sample.images)]
    try:
        from skimage import data
    except ImportError:
        logger.info("scikit-image is not installed: the non-pet photos are scikit-learn's two only.")
        return photos
    for name in SKIMAGE_PHOTOS:
        if hasattr(data, name):  # every one ships inside the package: nothing is downloaded
            photos.append((f"skimage.{name}", _encoded(_as_uint8(getattr(data, name)()), "JPEG")))
    return photos


def digits(per_digit: int = 4) -> list[tuple[str, bytes]]:
    """scikit-learn's 8x8 handwritten digits, dark on white as written."""
    from sklearn.datasets import load_digits

    found = load_digits()
    chosen = [index for digit in range(10) for index in np.flatnonzero(found.target == digit)[:per_digit]]
    return [(f"digit-{found.target[index]}-{index}", _encoded((255 - found.images[index] * 255 / 16).astype(np.uint8)))
            for index in chosen]


def noise(count: int = 20, seed: int = 0) -> list[tuple[str, bytes]]:
    """Uniform colour noise and Gaussian grey noise, at a few sizes."""
    rng = np.random.default_rng(seed)
    photos = []
    for index in range(count):
        size = (64, 224, 500)[index % 3]
        if index % 2:
            pixels = rng.normal(128, 50, (size, size)).clip(0, 255).astype(np.uint8)
        else:
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        photos.append((f"noise-{index}", _encoded(pixels)))
    return photos


def solid_colours() -> list[tuple[str, bytes]]:
    """Each colour as a 1x1 pixel and a 300x200 image, and a black 9000x9000 JPEG."""
    photos = [(f"{name}-{width}x{height}", _encoded(np.full((height, width, 3), rgb, np.uint8)))
              for name, rgb in _COLOURS.items() for width, height in ((1, 1), (300, 200))]
    huge = io.BytesIO()
    Image.new("RGB", (9000, 9000)).save(huge, "JPEG")
    return photos + [("black-9000x9000", huge.getvalue())]


def blurred(photos: Sequence[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """Each photo blurred past recognition (Gaussian radius 1/25 of its shorter side)."""
    result = []
    for name, content in photos:
        try:
            with Image.open(io.BytesIO(content)) as image:
                image = image.convert("RGB")
        except (UnidentifiedImageError, OSError):
            continue  # an unreadable pet is no blurred pet; the pet rate counts it
        result.append((f"blurred-{name}", _encoded(np.asarray(image.filter(
            ImageFilter.GaussianBlur(min(image.size) / 25))), "JPEG")))
    return result


def non_pet_photos(pets: Sequence[tuple[str, bytes]] = ()) -> Photos:
    """The non-pet photos by kind; ``pets`` (name, encoded photo) become the blurred ones."""
    photos = {"photos": real_photos(), "digits": digits(), "noise": noise(), "solid colours": solid_colours()}
    if pets:
        photos["blurred pets"] = blurred(pets)
    return photos


def rejection_rates(recognised: Callable[[list[bytes]], list[bool]], photos: Photos) -> dict:
    """The share of ``photos`` not recognised, overall and per kind, with the names that were.

    ``recognised`` answers, for a list of encoded photos, whether each got a class.
    """
    kinds, passed, total, rejected = {}, [], 0, 0
    for kind, named in photos.items():
        answers = recognised([content for _, content in named])
        kind_rejected = sum(not answer for answer in answers)
        kinds[kind] = {"num_photos": len(named), "rejected": round(kind_rejected / max(len(named), 1), 4)}
        passed += [name for (name, _), answer in zip(named, answers) if answer]
        total, rejected = total + len(named), rejected + kind_rejected
    return {"rejected": round(rejected / max(total, 1), 4), "num_photos": total, "kinds": kinds, "recognised": passed}


__all__ = ["SKIMAGE_PHOTOS", "blurred", "digits", "noise", "non_pet_photos", "real_photos", "rejection_rates",
           "solid_colours"]
