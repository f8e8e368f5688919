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


ODD_PATHS = ["file:/a/b/cat.jpg", "file:/a/b/cat", "file:/a/b/dog_12", "file:/a/b/x.y.z_3.png", "file:/a/b/12.jpg",
             "file:/a/b/c-d 7.jpg", "file:/a/b/_1.jpg", "file:/a/b/.jpg", "hdfs://n/x/y/", "s3a://b/k", "file:/top.jpg",
             "file:/a//b.jpg", "file:/a/b/tab\t9.jpg", "file:/a/b/\u00fc_3.JPG", "x.jpg"]


@pytest.mark.parametrize("rule", ["filename", "folder"])
def test_named_rules_in_the_jvm_label_as_the_python_rules(spark, pets_images, rule):
    from deepframes.images.labels import label_column, label_function

    paths = sorted("file:" + str(path) for path in pets_images.iterdir()) + ODD_PATHS
    frame = spark.createDataFrame([(path,) for path in paths], "path string")
    labelled = {row.path: row.label for row in frame.withColumn("label", label_column(rule)).collect()}
    python_rule = label_function(rule)
    assert {path: labelled[path] for path in paths} == {path: python_rule(path) for path in paths}
