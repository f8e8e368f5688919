"""read_images on local[2]: the pets set, every bad file kind, labels, sizes, partitions, errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from pyspark.errors import PythonException
from pyspark.ml.image import ImageSchema

import deepframes
from deepframes.images import to_numpy
from tests.conftest import BAD_FILE_ERRORS, ODD_FILE_CHANNELS, encode, gradient_rgb


@pytest.fixture
def pets(spark, pets_images):
    return deepframes.read_images(str(pets_images), label="filename", size=(64, 64), spark=spark)


def test_read_images_pets_all_decode_with_three_labels(pets):
    counts = {row["label"]: row["count"] for row in pets.groupBy("label").count().collect()}
    assert counts == {"Abyssinian": 200, "Bengal": 200, "american_bulldog": 200}
    assert pets.where("error IS NOT NULL OR image IS NULL").count() == 0
    sizes = pets.selectExpr("image.height AS h", "image.width AS w").distinct().collect()
    assert [(row.h, row.w) for row in sizes] == [(64, 64)]


def test_read_images_disguised_gif_and_png_decode(spark, pets_images):
    paths = [str(pets_images / "Abyssinian_34.jpg"), str(pets_images / "Abyssinian_5.jpg")]
    rows = {r.path.rsplit("/", 1)[1]: r for r in deepframes.read_images(paths, spark=spark).collect()}
    assert rows["Abyssinian_34.jpg"].error is None and rows["Abyssinian_34.jpg"].image.nChannels == 3
    assert rows["Abyssinian_5.jpg"].error is None and rows["Abyssinian_5.jpg"].image.nChannels == 4


def test_read_images_struct_works_with_imageschema(spark, pets_images):
    row = deepframes.read_images(str(pets_images / "Bengal_1.jpg"), spark=spark).first()
    array = ImageSchema.toNDArray(row.image)
    assert array.shape == (row.image.height, row.image.width, 3) == (901, 600, 3)
    np.testing.assert_array_equal(array[:, :, ::-1], to_numpy(row.image))
    assert row.image.origin == row.path


def test_read_images_bad_files_become_error_rows(spark, odd_images):
    rows = {r.path.rsplit("/", 1)[1]: r for r in deepframes.read_images(str(odd_images), spark=spark).collect()}
    assert set(rows) == set(BAD_FILE_ERRORS)
    for name, expected in BAD_FILE_ERRORS.items():
        if expected is None:
            assert rows[name].error is None, name
            assert rows[name].image.nChannels == ODD_FILE_CHANNELS[name]
        else:
            assert rows[name].image is None, name
            assert rows[name].error.startswith(expected), (name, rows[name].error)


def test_read_images_drop_removes_bad_files(spark, odd_images):
    df = deepframes.read_images(str(odd_images), errors="drop", spark=spark)
    names = sorted(r.path.rsplit("/", 1)[1] for r in df.collect())
    assert names == sorted(name for name, error in BAD_FILE_ERRORS.items() if error is None)
    assert df.where("error IS NOT NULL").count() == 0


def test_read_images_raise_names_the_file(spark, odd_images):
    df = deepframes.read_images(str(odd_images), errors="raise", spark=spark)
    with pytest.raises(PythonException, match=r"Cannot read image file:.*(empty|text|truncated)\.jpg"):
        df.collect()


def test_read_images_label_by_folder_regex_and_callable(spark, tmp_path):
    for folder, name in (("daisy", "img-daisy-01.png"), ("tulip", "img-tulip-02.PNG")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / name).write_bytes(encode(Image.fromarray(gradient_rgb()), "PNG"))

    def labels(rule):
        df = deepframes.read_images(str(tmp_path), label=rule, spark=spark)
        return sorted(r.label for r in df.collect())

    assert labels("folder") == ["daisy", "tulip"]
    assert labels(r"^img-([a-z]+)-") == ["daisy", "tulip"]
    assert labels(lambda path: path.rsplit("/", 1)[1][-6:-4].upper()) == ["01", "02"]


def test_read_images_without_label_has_no_label_column(spark, odd_images):
    assert deepframes.read_images(str(odd_images), spark=spark).columns == ["path", "image", "error"]


def test_read_images_extension_filter_is_case_insensitive(spark, tmp_path):
    picture = encode(Image.fromarray(gradient_rgb()), "PNG")
    for name in ("a.PNG", "b.Jpg", "c.txt", "d"):
        (tmp_path / name).write_bytes(picture)
    default = sorted(r.path[-5:] for r in deepframes.read_images(str(tmp_path), spark=spark).collect())
    assert default == ["a.PNG", "b.Jpg"]
    everything = deepframes.read_images(str(tmp_path), extensions=None, spark=spark)
    assert everything.count() == 4 and everything.where("error IS NULL").count() == 4


def test_read_images_recursive_switch_and_globs(spark, tmp_path):
    (tmp_path / "sub").mkdir()
    picture = encode(Image.fromarray(gradient_rgb()), "PNG")
    (tmp_path / "top.png").write_bytes(picture)
    (tmp_path / "sub" / "inner.png").write_bytes(picture)
    assert deepframes.read_images(str(tmp_path), spark=spark).count() == 2
    assert deepframes.read_images(str(tmp_path), recursive=False, spark=spark).count() == 1
    assert deepframes.read_images([str(tmp_path / "sub" / "*.png")], spark=spark).count() == 1


def test_read_images_partitions_sized_from_files_and_parallelism(spark, pets_images):
    df = deepframes.read_images(str(pets_images), spark=spark)
    assert 2 <= df.rdd.getNumPartitions() <= 20  # not 600 tasks, not 1
    assert deepframes.read_images(str(pets_images), num_partitions=3, spark=spark).rdd.getNumPartitions() == 3


def test_read_images_empty_partitions_are_fine(spark, pets_images):
    df = deepframes.read_images(str(pets_images / "Bengal_1*.jpg"), num_partitions=40, spark=spark)
    assert df.count() == len(list(pets_images.glob("Bengal_1*.jpg")))


def test_read_images_missing_path_is_one_clear_error(spark, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or folder: .*nothing-here"):
        deepframes.read_images(str(tmp_path / "nothing-here"), spark=spark)


def test_read_images_folder_without_images_says_how_to_fix(spark, tmp_path):
    (tmp_path / "notes.txt").write_text("no pictures")
    with pytest.raises(ValueError, match="found no image files.*extensions=None"):
        deepframes.read_images(str(tmp_path), spark=spark)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"errors": "ignore"}, r"`errors`.*Received: errors='ignore'"),
        ({"size": (0, 10)}, r"`size`.*Received: size=\(0, 10\)"),
        ({"num_partitions": 0}, r"`num_partitions`.*Received: num_partitions=0"),
        ({"resample": "fancy"}, r"`resample`.*Received: resample='fancy'"),
        ({"label": r"no group"}, "exactly one group"),
        ({"max_pixels": 0}, r"`max_pixels`.*Received: max_pixels=0"),
        ({"max_pixels": 1000, "decode": False}, r"`max_pixels` cannot apply"),
    ],
)
def test_read_images_bad_arguments(spark, pets_images, kwargs, message):
    with pytest.raises(ValueError, match=message):
        deepframes.read_images(str(pets_images), spark=spark, **kwargs)


def test_read_images_failing_label_function_names_path(spark, odd_images):
    df = deepframes.read_images(str(odd_images), label=lambda path: 1 / 0, spark=spark)
    with pytest.raises(PythonException, match="`label` function raised ZeroDivisionError.*on path"):
        df.collect()


def test_read_images_max_pixels_refuses_large_files_as_error_rows(spark, tmp_path):
    (tmp_path / "small.png").write_bytes(encode(Image.new("RGB", (40, 30)), "PNG"))
    (tmp_path / "large.png").write_bytes(encode(Image.new("RGBA", (400, 300)), "PNG"))
    rows = {row.path.rsplit("/", 1)[1]: row for row in
            deepframes.read_images(str(tmp_path), max_pixels=100_000, size=16, spark=spark).collect()}
    assert rows["small.png"].error is None and rows["small.png"].image.width == 16
    assert rows["large.png"].image is None
    assert rows["large.png"].error.startswith("image too large: 400x300 = 0.1 million pixels, over the limit")
    dropped = deepframes.read_images(str(tmp_path), max_pixels=100_000, errors="drop", spark=spark)
    assert [row.path.rsplit("/", 1)[1] for row in dropped.collect()] == ["small.png"]
