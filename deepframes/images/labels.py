"""Rules that derive an image's label from its path: folder, file name, regex or a callable."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Union

LabelRule = Union[str, Callable[[str], object]]

# Oxford-IIIT Pet names files `<breed>_<number>.<ext>`: `american_bulldog_10.jpg`.
_NUMBERED_STEM = re.compile(r"^(?P<name>.+?)[_\-\s]*\d+$")


def _file_name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def label_from_folder(path: str) -> str | None:
    """The parent folder's name: ``flowers/daisy/x.jpg`` -> ``daisy``.

    >>> label_from_folder("file:///data/flowers/daisy/x.jpg")
    'daisy'
    """
    parts = path.rstrip("/").split("/")
    return parts[-2] or None if len(parts) > 1 else None


def label_from_filename(path: str) -> str:
    """The file name without its extension and trailing number: ``american_bulldog_10.jpg`` ->
    ``american_bulldog``.

    >>> label_from_filename("file:///pets/american_bulldog_10.jpg")
    'american_bulldog'
    """
    stem = _file_name(path).rsplit(".", 1)[0]
    match = _NUMBERED_STEM.match(stem)
    return match.group("name") if match else stem


class RegexLabel:
    """The first group of a regular expression searched in the file name (None when no match).

    >>> RegexLabel(r"^([a-z]+)_")("file:///x/cat_01.png")
    'cat'
    """

    def __init__(self, pattern: str) -> None:
        try:
            self.regex = re.compile(pattern)
        except re.error as error:
            raise ValueError(
                f"Invalid value received for argument `label`: {pattern!r} is not a valid regular "
                f"expression ({error})."
            ) from None
        if self.regex.groups != 1:
            raise ValueError(
                "A regular expression given as `label` must have exactly one group, which becomes "
                f"the label. Received: {pattern!r} with {self.regex.groups} groups. Example: "
                r"label=r'^(.+)_\d+\.jpg$'"
            )

    def __call__(self, path: str) -> str | None:
        match = self.regex.search(_file_name(path))
        return match.group(1) if match else None


def label_column(label: LabelRule | None):
    """The named rules (``"folder"``, ``"filename"``) as a Spark column of ``path``, computed in
    the JVM; None for a regular expression or a callable, which run in Python.

    Files left encoded then never travel to Python only to be labelled. Each expression gives
    what the Python rule gives (tests compare them on every shared pet and on odd names).
    """
    from pyspark.sql import functions as F

    path = F.regexp_replace(F.col("path"), "/+$", "")
    if label == "folder":
        parts = F.split(path, "/")
        parent = F.element_at(parts, -2)
        return F.when(F.size(parts) > 1, F.when(parent != "", parent))
    if label == "filename":
        name = F.regexp_extract(path, "([^/]*)$", 1)
        stem = F.when(name.contains("."), F.regexp_extract(name, r"^(.*)\.[^.]*$", 1)).otherwise(name)
        numbered = r"^(.+?)[_\-\s]*\d+$"
        return F.when(stem.rlike(numbered), F.regexp_extract(stem, numbered, 1)).otherwise(stem)
    return None


_NAMED_RULES: dict[str, Callable[[str], str | None]] = {
    "folder": label_from_folder,
    "filename": label_from_filename,
}


def label_function(label: LabelRule | None) -> Callable[[str], object] | None:
    """Turn the ``label`` argument of ``read_images`` into a function of the path.

    ``"folder"`` and ``"filename"`` are the named rules; any other string is a regular expression
    with one group applied to the file name; a callable is used as it is.
    """
    if label is None or callable(label):
        return label
    if not isinstance(label, str):
        raise TypeError(
            "Invalid value received for argument `label`. Expected None, 'folder', 'filename', a "
            f"regular expression with one group, or a callable on the path. Received: {label!r}"
        )
    return _NAMED_RULES.get(label) or RegexLabel(label)
