"""The Python worker daemon of sessions deepframes starts: PySpark's own daemon, after importing
once what every deepframes task imports.

Spark starts one daemon per executor (``spark.python.daemon.module``) and forks a worker from it
for each Python task that finds no idle worker. PySpark's daemon imports almost nothing, so every
worker paid for pandas, PyArrow, PySpark's SQL modules and deepframes' executor code itself
(about 0.5 s and 100 MB of private memory each, measured here). Imported here, before the fork,
they are in every worker at once and their pages are shared until written. No framework is
imported (a worker that runs no TensorFlow must not pay for it) and nothing that starts threads
that a fork would lose.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys

PRELOADED = (
    "numpy",
    "pyarrow",
    "pandas",
    "pyspark.worker",
    "pyspark.sql.pandas.serializers",
    "PIL.Image",
    "PIL.JpegImagePlugin",
    "deepframes.inference",
    "deepframes.blocks",
)


def inside_installed_pyspark(entry: str) -> bool:
    """Whether a path entry is an archive inside an installed pyspark package (its
    ``python/lib/pyspark.zip``, py4j's zip, a jar).

    PySpark puts those archives on its workers' path for clusters without the pip package. Where
    the package is installed they hold the same code, but imported from a zip it is compiled at
    every import (no bytecode cache), and ``importlib.invalidate_caches``, which every task
    calls, lists each archive again (0.2 s a task, measured here on spark-core's jar).

    >>> inside_installed_pyspark(os.path.join(os.path.dirname(importlib.import_module("pyspark").__file__),
    ...                                       "python", "lib", "pyspark.zip"))
    True
    >>> inside_installed_pyspark("/opt/spark/python/lib/pyspark.zip")
    False

    Package folders inside an archive count too (``.../pyspark.zip/pyspark/sql``).
    """
    parts = entry.split(os.sep)
    archives = [index for index, part in enumerate(parts) if part.endswith((".zip", ".jar"))]
    if not archives:
        return False
    for index in range(archives[0] - 1, 0, -1):
        if parts[index] == "pyspark" and os.path.isfile(os.sep.join(parts[:index + 1] + ["__init__.py"])):
            return True
    return False


def preload() -> None:
    sys.path[:] = [entry for entry in sys.path if not inside_installed_pyspark(entry)]
    for entry in [entry for entry in sys.path_importer_cache if inside_installed_pyspark(entry)]:
        del sys.path_importer_cache[entry]
    for name in PRELOADED:
        try:
            importlib.import_module(name)
        except ImportError:  # a worker imports what it needs itself, as with PySpark's daemon
            pass
    # Objects that live as long as the daemon: out of the collector's sight, so that a
    # collection in a worker does not write to (and so copy) the pages they share.
    gc.collect()
    gc.freeze()


if __name__ == "__main__":
    preload()
    from pyspark.daemon import manager

    manager()
