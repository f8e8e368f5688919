"""Output folders that appear whole or not at all: write into a sibling, then move into place.

``--out`` is a local path or any Hadoop URI (``hdfs://``, ``s3a://``, ``abfss://``...). Spark writes
its part of the output (Parquet, a saved pipeline) straight to the sibling; files made on this
machine (plots, reports, JSON) are written to a local folder first and copied there through
Hadoop's ``FileSystem`` (``deepframes.storage``) before the sibling is moved into place.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import storage
from .errors import InputError

# A folder holding this file was written by deepframes and may be replaced by a new run.
MARKER = ".deepframes-output"
_MARKER_TEXT = "written by deepframes; safe to replace with a new run\n"


def check_output(out: str | Path, spark: Any = None) -> str:
    """Refuse an existing folder that deepframes did not write (so a typo cannot erase data);
    returns ``out`` as an absolute path, or the URI as given.

    Without ``spark``, a URI on another file system is left for ``staged_output`` to check once
    the session is up.

    >>> check_output("/nonexistent/deepframes-out")
    '/nonexistent/deepframes-out'
    """
    if storage.is_local(str(out)):
        path = Path(storage.local_path(str(out))).resolve()
        taken = path.exists() and (not path.is_dir() or (any(path.iterdir()) and not (path / MARKER).exists()))
        out = str(path)
    else:
        out = str(out).rstrip("/")
        try:
            taken = spark is not None and storage.exists(spark, out) and not storage.exists(spark, storage.join(out, MARKER))
        except ValueError as error:  # no file system for the scheme, or a Connect session
            raise InputError(str(error)) from None
    if taken:
        raise InputError(
            f"Output {out} already exists and was not written by deepframes; expected a new or empty "
            "folder. Choose another --out, or remove it."
        )
    return out


@dataclass(frozen=True)
class Staging:
    """Where a command writes before its output moves into place.

    ``uri`` is for Spark's writers (the sibling folder, on ``out``'s file system); ``folder`` is a
    local folder for files made on this machine. For a local ``out`` they are one folder.
    """

    uri: str
    folder: Path


@contextlib.contextmanager
def staged_output(out: str | Path, spark: Any = None) -> Iterator[Staging]:
    """Yield a ``Staging`` beside ``out``; on success it replaces ``out``, on failure it goes.

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "report"
    >>> with staged_output(target) as staging:
    ...     _ = (staging.folder / "results.csv").write_text("a,b\\n")
    >>> sorted(p.name for p in target.iterdir())
    ['.deepframes-output', 'results.csv']
    """
    final = check_output(out, spark)
    if storage.is_local(final):
        with _local_staging(Path(final)) as staging:
            yield staging
        return
    staging_uri = f"{final}.partial-{uuid.uuid4().hex[:12]}"
    folder = Path(tempfile.mkdtemp(prefix="deepframes-out-"))
    try:
        yield Staging(staging_uri, folder)
        (folder / MARKER).write_text(_MARKER_TEXT)
        for item in folder.iterdir():
            storage.copy_to(spark, str(item), storage.join(staging_uri, item.name))
        storage.delete(spark, final)
        storage.rename(spark, staging_uri, final)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if storage.exists(spark, staging_uri):
            storage.delete(spark, staging_uri)


# Staging folders removed after a failure: a task of a job cancelled a moment before may still
# write into one, so they are removed again once Spark has stopped (remove_abandoned_staging).
_ABANDONED: list[Path] = []


@contextlib.contextmanager
def _local_staging(final: Path) -> Iterator[Staging]:
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{final.name}.partial-", dir=final.parent))
    try:
        yield Staging(str(staging), staging)
        (staging / MARKER).write_text(_MARKER_TEXT)
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
            _ABANDONED.append(staging)


def remove_abandoned_staging() -> None:
    """Remove what tasks still running at a failure wrote into removed staging folders (call it
    once Spark has stopped)."""
    while _ABANDONED:
        shutil.rmtree(_ABANDONED.pop(), ignore_errors=True)


def is_uri_file(spark: Any, uri: str, name: str) -> bool:
    """Whether the folder ``uri`` (local or any Hadoop URI) holds the file ``name``."""
    if storage.is_local(uri):
        return os.path.exists(os.path.join(storage.local_path(uri), name))
    return storage.exists(spark, storage.join(uri, name))
