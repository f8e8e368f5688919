"""Image files on this machine's disk listed without Spark, as Spark's ``binaryFile`` source lists
them (folders looked into, globs expanded, names starting with ``_`` or ``.`` skipped), for work
small enough to run in-process."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence

from .. import storage


def list_local_images(paths: Sequence[str], extensions: Sequence[str], limit: int) -> list[str] | None:
    """The image files under ``paths`` as sorted ``file:`` URIs, or None when a path is not on
    this machine's disk (a Hadoop URI) or there are more than ``limit`` files: that is work
    for Spark.

    >>> files = list_local_images(["../shared/data/pets/images/Bengal_1?.jpg"], ["jpg"], limit=100)
    >>> len(files), files[0].startswith("file:/"), files[0].endswith("Bengal_10.jpg")
    (10, True, True)
    >>> list_local_images(["hdfs://namenode/photos"], ["jpg"], limit=100) is None
    True
    """
    wanted = tuple("." + extension.lower().lstrip(".") for extension in extensions)
    found: set[str] = set()
    for path in paths:
        if not storage.is_local(str(path)):
            return None
        local = storage.local_path(str(path))
        matches = glob.glob(local) if glob.has_magic(local) else [local]
        for match in matches:
            for file in _files(match):
                if file.lower().endswith(wanted) and not _hidden(file):
                    found.add("file:" + os.path.abspath(file))
            if len(found) > limit:
                return None
    return sorted(found)


def _files(path: str) -> list[str]:
    if not os.path.isdir(path):
        return [path] if os.path.isfile(path) else []
    files = []
    for root, folders, names in os.walk(path):
        folders[:] = [name for name in folders if not _hidden(name)]
        files.extend(os.path.join(root, name) for name in names)
    return files


def _hidden(path: str) -> bool:
    return os.path.basename(path).startswith(("_", "."))
