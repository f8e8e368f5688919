"""Label rules: folder, Oxford-IIIT Pet file names, regular expressions, callables."""

from __future__ import annotations

import pytest

from deepframes.images.labels import label_from_filename, label_from_folder, label_function


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("file:///pets/american_bulldog_10.jpg", "american_bulldog"),
        ("file:///pets/Abyssinian_5.jpg", "Abyssinian"),
        ("hdfs://nn/x/great_pyrenees_191.JPG", "great_pyrenees"),
        ("/plain/noNumber.png", "noNumber"),
    ],
)
def test_label_from_filename_strips_number(path, expected):
    assert label_from_filename(path) == expected


def test_label_from_folder_is_parent_name():
    assert label_from_folder("s3a://bucket/flowers/daisy/x.jpg") == "daisy"


def test_label_function_regex_uses_its_group_on_file_name():
    rule = label_function(r"^img-(\w+?)-\d+")
    assert rule("file:///a/b/img-tulip-004.png") == "tulip"
    assert rule("file:///a/img-tulip/other.png") is None  # only the file name is searched


def test_label_function_regex_needs_exactly_one_group():
    with pytest.raises(ValueError, match="exactly one group.*Received: '.*' with 2 groups"):
        label_function(r"(a)(b)")
    with pytest.raises(ValueError, match="not a valid regular expression"):
        label_function(r"(unclosed")


def test_label_function_rejects_other_types():
    with pytest.raises(TypeError, match="Received: 3"):
        label_function(3)
