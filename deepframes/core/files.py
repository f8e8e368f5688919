"""Files the driver sends to every executor: through ``SparkContext.addFile`` on a classic
session, as a session artifact on Spark Connect; read back on the executor with ``SparkFiles``.

Model files (``models.spec``) and the study's feature matrix travel this way, so executors on
other machines get them without a shared file system.
"""

from __future__ import annotations

import os
import shutil
import threading
from typing import Any

from .._scratch import scratch_folder

# The folder of digest-named copies (made on first use, under this process's scratch root).
_COPIES: list[str] = []
# (application or Connect session, file) pairs already sent: addFile refuses a second time.
_SHIPPED: set[tuple[str, str]] = set()


def digest_named_copy(path: str, digest: str) -> str:
    """A hard link (else a copy) of ``path`` named by its digest, so two files called
    model.onnx never collide, and executors fetching it later get these bytes even when the
    user's file was moved or rewritten meanwhile. It lives in this process's scratch folder,
    removed when the process exits (the session that serves it ends with it)."""
    if not _COPIES:
        _COPIES.append(scratch_folder())
    target = os.path.join(_COPIES[0], f"{digest[:16]}-{os.path.basename(path.rstrip('/'))}")
    if not os.path.exists(target):
        temporary = f"{target}.{threading.get_ident()}"
        if os.path.isdir(path):
            shutil.copytree(path, temporary, copy_function=_link_or_copy)
        else:
            _link_or_copy(path, temporary)
        try:
            os.replace(temporary, target)
        except OSError:  # another thread put the same digest there first
            if os.path.isdir(temporary):
                shutil.rmtree(temporary, ignore_errors=True)
            else:
                os.unlink(temporary)
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

    path = os.path.abspath(path)  # Spark's JVM resolves relative paths from its own working folder

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
