"""decode_image: every format and pixel mode we promise, and a reason for each bad file."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from deepframes.images.decode import ImageDecodeError, ImageTooLargeError, check_image_header, decode_image
from tests.conftest import BAD_FILE_ERRORS, _bad_and_odd_files, encode, gradient_rgb


@pytest.mark.parametrize("name", [n for n, e in BAD_FILE_ERRORS.items() if e])
def test_decode_image_bad_file_gives_reason(name):
    content = _bad_and_odd_files()[name][0]
    with pytest.raises(ImageDecodeError, match=BAD_FILE_ERRORS[name].replace("(", r"\(").replace(")", r"\)")):
        decode_image(content)


@pytest.mark.parametrize("image_format", ["PNG", "BMP", "TIFF", "WEBP"])
def test_decode_image_lossless_formats_are_exact(image_format):
    pixels = gradient_rgb()
    options = {"lossless": True} if image_format == "WEBP" else {}
    decoded = decode_image(encode(Image.fromarray(pixels), image_format, **options))
    np.testing.assert_array_equal(decoded, pixels)


def test_decode_image_jpeg_is_close_to_source():
    pixels = gradient_rgb()
    decoded = decode_image(encode(Image.fromarray(pixels), "JPEG", quality=98))
    assert decoded.shape == pixels.shape
    assert np.abs(decoded.astype(int) - pixels).mean() < 4


def test_decode_image_gif_gives_first_frame():
    frames = [Image.new("RGB", (8, 6), colour) for colour in ("red", "blue")]
    content = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    decoded = decode_image(content)
    assert decoded.shape == (6, 8, 3)
    assert tuple(decoded[0, 0]) == (255, 0, 0)


def test_decode_image_keeps_alpha_as_fourth_channel():
    rgba = np.dstack([gradient_rgb(), np.full((24, 32), 77, np.uint8)])
    decoded = decode_image(encode(Image.fromarray(rgba), "PNG"))
    np.testing.assert_array_equal(decoded, rgba)


def test_decode_image_palette_with_transparency_becomes_rgba():
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    decoded = decode_image(encode(image, "PNG", transparency=0))
    assert decoded.shape == (4, 4, 4)
    assert tuple(decoded[0, 0]) == (255, 0, 0, 255)


def test_decode_image_grayscale_has_one_channel():
    gray = gradient_rgb()[:, :, 0]
    decoded = decode_image(encode(Image.fromarray(gray), "PNG"))
    np.testing.assert_array_equal(decoded[:, :, 0], gray)
    assert decoded.shape == (24, 32, 1)


def test_decode_image_sixteen_bit_scaled_to_eight_bit():
    values = np.array([[0, 257, 65535, 32896]], dtype=np.uint16)
    decoded = decode_image(encode(Image.fromarray(values), "PNG"))
    assert decoded[0, :, 0].tolist() == [0, 1, 255, 128]


def test_decode_image_cmyk_converted_to_rgb():
    content = encode(Image.new("CMYK", (10, 10), (0, 255, 255, 0)), "JPEG", quality=100)
    decoded = decode_image(content)
    assert decoded.shape == (10, 10, 3)
    red, green, blue = decoded[5, 5].astype(int)
    assert red > 200 and green < 60 and blue < 60


def test_decode_image_applies_exif_orientation():
    picture = Image.fromarray(gradient_rgb(24, 32))
    exif = picture.getexif()
    exif[0x0112] = 6  # rotated 90 degrees clockwise when shown
    decoded = decode_image(encode(picture, "PNG", exif=exif))
    assert decoded.shape == (32, 24, 3)


def test_decode_image_reads_files_whose_name_lies(pets_images):
    # In the shared pets, Abyssinian_34.jpg is a GIF and Abyssinian_5.jpg a PNG with alpha.
    gif = decode_image((pets_images / "Abyssinian_34.jpg").read_bytes())
    png = decode_image((pets_images / "Abyssinian_5.jpg").read_bytes())
    assert gif.ndim == 3 and gif.shape[2] in (1, 3) and min(gif.shape[:2]) > 1
    assert png.shape[2] == 4  # the alpha channel of a PNG is kept, though the name says JPEG


@pytest.mark.parametrize("size", [(224, 224), (10, 300), (5, 7)])
def test_decode_image_resizes_to_exact_size(size):
    content = encode(Image.fromarray(gradient_rgb(600, 450)), "JPEG")
    assert decode_image(content, size=size).shape == (*size, 3)


def test_decode_image_reduced_jpeg_decode_matches_full_decode(pets_images):
    content = (pets_images / "Bengal_1.jpg").read_bytes()  # 600x901, decoded at half scale
    fast = decode_image(content, size=(224, 224)).astype(int)
    full = Image.open(io.BytesIO(content)).convert("RGB").resize((224, 224), Image.BILINEAR)
    assert np.abs(fast - np.asarray(full)).mean() < 2


def test_decode_image_rejects_unknown_resample():
    with pytest.raises(ValueError, match="resample"):
        decode_image(encode(Image.new("RGB", (4, 4)), "PNG"), size=(2, 2), resample="cubic-ish")


def test_decode_image_refuses_more_pixels_than_max_pixels_from_the_header():
    content = encode(Image.new("RGBA", (3000, 2000)), "PNG")
    assert check_image_header(content) == ("PNG", 3000, 2000)
    for refuse in (lambda: check_image_header(content, max_pixels=5_000_000),
                   lambda: decode_image(content, size=(224, 224), max_pixels=5_000_000)):
        with pytest.raises(ImageTooLargeError, match=r"3000x2000 = 6.0 million pixels, over the limit of 5 million") as caught:
            refuse()
        assert (caught.value.width, caught.value.height) == (3000, 2000)
    assert decode_image(content, size=(10, 10), max_pixels=6_000_000).shape == (10, 10, 4)


def test_decode_image_over_pillows_bomb_limit_is_too_large_without_a_warning(monkeypatch, recwarn):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    content = encode(Image.new("RGB", (40, 30)), "PNG")  # 1,200 pixels: Pillow would only warn
    with pytest.raises(ImageTooLargeError, match="too large to decode safely: 40x30.*PIL.Image.MAX_IMAGE_PIXELS"):
        decode_image(content)
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


@pytest.mark.parametrize("mode", ["RGBA", "RGB", "L", "I;16", "P"])
def test_decode_image_shrinks_large_images_before_converting_them(mode):
    source = Image.fromarray(gradient_rgb(1200, 1000)).convert("RGBA" if mode == "P" else mode)
    if mode == "P":
        source = source.convert("RGB").convert("P")
    content = encode(source, "PNG")
    reduced = decode_image(content, size=(100, 120)).astype(float)
    plain = decode_image(content).astype(np.uint8)
    full = np.asarray(Image.fromarray(plain.squeeze()).resize((120, 100), Image.BILINEAR), dtype=float)
    assert reduced.shape[:2] == (100, 120)
    assert np.abs(reduced.squeeze() - full).mean() < 3, mode


def test_decode_image_turns_a_large_image_shrunk_before_converting():
    rows, cols = np.mgrid[0:1000, 0:1500]  # smooth, so that box averaging and bilinear agree
    smooth = np.stack([rows * 255 // 999, cols * 255 // 1499, (rows + cols) * 255 // 2498], axis=-1)
    picture = Image.fromarray(smooth.astype(np.uint8))  # reduced 3x before it is turned
    exif = picture.getexif()
    exif[0x0112] = 6  # rotated 90 degrees clockwise when shown
    content = encode(picture, "PNG", exif=exif)
    reduced = decode_image(content, size=(150, 100)).astype(float)
    turned = Image.fromarray(decode_image(content)).resize((100, 150), Image.BILINEAR)
    assert reduced.shape == (150, 100, 3)
    assert np.abs(reduced - np.asarray(turned, dtype=float)).mean() < 3
