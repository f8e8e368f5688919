"""Folders for files that live as long as this process (a fitted or loaded stage points at them),
all under one root that is removed when the process exits, also after a failure."""

from __future__ import annotations

import atexit
import shutil
import tempfile

_ROOT: list[str] = []


def scratch_folder() -> str:
    """A new, empty folder under this process's scratch root (made on first use)."""
    if not _ROOT:
        root = tempfile.mkdtemp(prefix="deepframes-scratch-")
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _ROOT.append(root)
    return tempfile.mkdtemp(dir=_ROOT[0])
