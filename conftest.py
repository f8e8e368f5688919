"""Repository-wide pytest hooks: the docstring examples clean up after themselves."""

from __future__ import annotations

import shutil
import tempfile

import pytest


@pytest.fixture(autouse=True)
def _remove_doctest_folders(request, monkeypatch):
    """Docstring examples make folders with a bare ``tempfile.mkdtemp()`` (it reads best in the
    docs); remove each one when the example ends. Library code always passes a prefix or a
    folder, and manages its own folders."""
    if not isinstance(request.node, pytest.DoctestItem):
        yield
        return
    made: list[str] = []
    original = tempfile.mkdtemp

    def mkdtemp(suffix=None, prefix=None, dir=None):
        folder = original(suffix, prefix, dir)
        if suffix is None and prefix is None and dir is None:
            made.append(folder)
        return folder

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    yield
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)
