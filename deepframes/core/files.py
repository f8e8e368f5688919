"""Files the driver sends to every executor: through ``SparkContext.addFile`` on a classic
session, as a session artifact on Spark Connect; read back on the executor with ``SparkFiles``.

Model files (``models.spec``) and the study's feature matrix travel this way, so executors on
other machines get them without a shared file system.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

# (application or Connect session, file) pairs already sent: addFile refuses a second time.
_SHIPPED: set[tuple[str, str]] = set()


def digest_named_copy(path: str, digest: str) -> str:
    """A hard link (else a copy) of ``path`` named by its digest, so two files called
    model.onnx never collide, and executors fetching it later get these bytes even when the
    user's file was moved or rewritten meanwhile."""
    folder = os.path.join(tempfile.gettempdir(), "deepframes-models")
    os.makedirs(folder, exist_ok=True)
    target = os.path.join(folder, f"{digest[:16]}-{os.path.basename(path.rstrip('/'))}")
    if os.path.islink(target):  # left by an older version, which linked by name
        os.unlink(target)
    if not os.path.exists(target):
        temporary = f"{target}.{os.getpid()}"
        if os.path.isdir(path):
            shutil.copytree(path, temporary, copy_function=_link_or_copy)
        else:
            _link_or_copy(path, temporary)
        try:
            os.replace(temporary, target)
        except OSError:  # another process put the same digest there first
            shutil.rmtree(temporary, ignore_errors=True)
    return target


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(source, target)


def ship_file(spark: Any, path: str, what: str = "A folder") -> str:
    """Send ``path`` (a file; a folder on a classic session only) to every executor once per
    session; returns the name ``SparkFiles.get`` finds it under there."""
    from ..session import is_connect

    if is_connect(spark):  # no SparkContext: the file goes as a session artifact
        if os.path.isdir(path):
            raise ValueError(
                f"{what} ({path}) cannot be sent through Spark Connect, which ships single files. "
                "Expected one file. Export it to one file, or use a classic session "
                "(deepframes.session(master=...))."
            )
        key = (spark.session_id, path)
        if key not in _SHIPPED:
            spark.addArtifacts(path, file=True)
    else:
        context = spark.sparkContext
        key = (context.applicationId, path)
        if key not in _SHIPPED:
            context.addFile(path, recursive=os.path.isdir(path))
    _SHIPPED.add(key)
    return os.path.basename(path)


def shipped_path(name: str, fallback: str | None = None) -> str:
    """On an executor, the local path of a file sent with ``ship_file`` (``fallback``, the
    driver's path, when Spark has no such file here: a local run in the driver's process)."""
    from pyspark import SparkFiles

    shipped = SparkFiles.get(name)
    return shipped if os.path.exists(shipped) or fallback is None else fallback


__all__ = ["digest_named_copy", "ship_file", "shipped_path"]
