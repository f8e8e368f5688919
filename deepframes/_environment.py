"""What deepframes runs on: versions of Python, Spark, Java and each deep-learning engine."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

from ._java import find_java
from .engines import ENGINES
from .session import MASTER_ENV_VAR, resolve_master

def _version(*distributions: str) -> str | None:
    for distribution in distributions:
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return None


def environment_report(master: str | None = None) -> dict:
    """Versions of everything deepframes uses, without importing any engine or starting Spark."""
    java = find_java()
    return {
        "deepframes": _version("deepframes"),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "pyspark": _version("pyspark"),
        "java": {"executable": java.executable, "version": java.version, "usable": java.usable},
        "engines": {
            name: {"version": _version(*dists), "install": f"pip install 'deepframes[{entry.extra}]'"}
            for entry in ENGINES.values() for name, dists in entry.packages
        },
        "master": resolve_master(master),
        "master_source": "argument" if master else (
            MASTER_ENV_VAR if os.environ.get(MASTER_ENV_VAR) else "default"
        ),
    }
