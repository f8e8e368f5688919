"""Image struct <-> NumPy / PIL conversions are exact inverses and match Spark's ImageSchema."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from pyspark.ml.image import ImageSchema

from deepframes.images import from_numpy, from_pil, to_numpy, to_pil
from deepframes.images.schema import IMAGE_STRUCT
from tests.conftest import encode, gradient_rgb


def _pixels(channels: int) -> np.ndarray:
    base = gradient_rgb()
    if channels == 1:
        return base[:, :, :1]
    if channels == 4:
        return np.dstack([base, np.arange(base.shape[0] * base.shape[1], dtype=np.uint8).reshape(base.shape[:2])])
    return base


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("layout", ["HWC", "CHW"])
@pytest.mark.parametrize("channel_order", ["RGB", "BGR"])
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_to_numpy_from_numpy_are_inverses(channels, layout, channel_order, dtype):
    struct = from_numpy(_pixels(channels), origin="mem://x")
    array = to_numpy(struct, layout=layout, channel_order=channel_order, dtype=dtype)
    assert array.dtype == np.dtype(dtype)
    assert array.shape == ((24, 32, channels) if layout == "HWC" else (channels, 24, 32))
    again = from_numpy(array, origin="mem://x", layout=layout, channel_order=channel_order)
    assert again == struct
    np.testing.assert_array_equal(to_numpy(again, layout, channel_order, dtype), array)


def test_struct_stores_bgr_like_spark(spark):  # ImageSchema needs a running SparkContext
    struct = from_numpy(np.array([[[10, 20, 30]]], dtype=np.uint8))
    assert bytes(struct.data) == bytes([30, 20, 10])
    assert (struct.nChannels, struct.mode) == (3, 16)
    np.testing.assert_array_equal(ImageSchema.toNDArray(struct), [[[30, 20, 10]]])


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_to_pil_from_pil_are_inverses(mode):
    picture = Image.fromarray(_pixels({"L": 1, "RGB": 3, "RGBA": 4}[mode]).squeeze())
    assert picture.mode == mode
    back = to_pil(from_pil(picture))
    assert back.mode == mode
    np.testing.assert_array_equal(np.asarray(back), np.asarray(picture))


def test_from_pil_converts_unusual_modes():
    assert from_pil(Image.new("CMYK", (3, 2))).nChannels == 3
    assert from_pil(Image.new("LA", (3, 2))).nChannels == 4
    assert from_pil(Image.new("1", (3, 2))).nChannels == 1


def test_struct_round_trips_through_spark_and_imageschema(spark):
    pixels = gradient_rgb()
    df = spark.createDataFrame([(from_numpy(pixels, origin="mem://g"),)], f"image {IMAGE_STRUCT.simpleString()}")
    row = df.first()["image"]
    np.testing.assert_array_equal(ImageSchema.toNDArray(row), pixels[:, :, ::-1])
    np.testing.assert_array_equal(to_numpy(row), pixels)


def test_read_images_struct_equals_spark_image_source(spark, tmp_path):
    """Spark's own image reader and ours give byte-identical structs for a lossless file."""
    for name, channels in (("rgb.png", 3), ("rgba.png", 4)):
        (tmp_path / name).write_bytes(encode(Image.fromarray(_pixels(channels)), "PNG"))
    import deepframes

    ours = {r.path.rsplit("/", 1)[1]: r.image for r in deepframes.read_images(str(tmp_path), spark=spark).collect()}
    theirs = {r.image.origin.rsplit("/", 1)[1]: r.image for r in spark.read.format("image").load(str(tmp_path)).collect()}
    assert len(ours) == 2
    for path, image in theirs.items():
        mine = ours[path]
        assert (mine.height, mine.width, mine.nChannels, mine.mode) == (
            image.height, image.width, image.nChannels, image.mode)
        assert bytes(mine.data) == bytes(image.data)


def test_to_numpy_rejects_bad_arguments():
    struct = from_numpy(gradient_rgb())
    with pytest.raises(ValueError, match=r"Expected one of \['HWC', 'CHW'\]. Received: layout='WHC'"):
        to_numpy(struct, layout="WHC")
    with pytest.raises(ValueError, match="null image"):
        to_numpy(None)


def test_from_numpy_rejects_out_of_range_floats():
    with pytest.raises(ValueError, match=r"\[0, 255\].*rescale"):
        from_numpy(np.full((2, 2, 3), 300.0))
    with pytest.raises(ValueError, match="1, 3 or 4 channels. Received: 2"):
        from_numpy(np.zeros((2, 2, 2), dtype=np.uint8))


def test_from_numpy_scales_floats_in_unit_range_instead_of_rounding():
    unit = np.linspace(0.0, 1.0, 2 * 3 * 3).reshape(2, 3, 3)
    pixels = to_numpy(from_numpy(unit))
    np.testing.assert_array_equal(pixels, np.rint(unit * 255).astype(np.uint8))
    assert len(np.unique(pixels)) == unit.size  # nothing collapsed to 0 or 1
    half = to_numpy(from_numpy(np.full((2, 2), 0.25, dtype=np.float32)))
    assert half.ravel().tolist() == [64] * 4


def test_from_numpy_value_range_is_explicit_when_asked():
    mask = np.array([[0.0, 1.0]])
    assert to_numpy(from_numpy(mask)).ravel().tolist() == [0, 1]  # whole numbers: 0-255 values
    assert to_numpy(from_numpy(mask, value_range="0-1")).ravel().tolist() == [0, 255]
    assert to_numpy(from_numpy(np.array([[0.2, 0.6]]), value_range="0-255")).ravel().tolist() == [0, 1]
    with pytest.raises(ValueError, match=r"\[0, 1\] with value_range='0-1' \(read as 0-1\). Received values from 0.0 to 2.0.*pass the value_range"):
        from_numpy(np.array([[0.0, 2.0]]), value_range="0-1")
    with pytest.raises(ValueError, match=r"Received: value_range='unit'"):
        from_numpy(mask, value_range="unit")
    with pytest.raises(ValueError, match=r"NaN.*nan_to_num"):
        from_numpy(np.array([[np.nan, 0.5]]))


def test_from_numpy_keeps_0_255_floats_and_refuses_out_of_range():
    assert to_numpy(from_numpy(np.array([[12.4, 200.6]]))).ravel().tolist() == [12, 201]
    with pytest.raises(ValueError, match=r"\[0, 255\] with value_range='auto' \(read as 0-255\). Received values from -1.0 to 3.5"):
        from_numpy(np.array([[-1.0, 3.5]]))
