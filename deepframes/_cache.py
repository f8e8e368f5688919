"""deepframes' per-user cache folder: files worth keeping between processes (the JVM's class
archive, ONNX graphs cut to the outputs a stage needs), each named by what it was made from."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "DEEPFRAMES_CACHE"


def cache_folder(part: str) -> Path | None:
    """``part`` under ``$DEEPFRAMES_CACHE``, else ``$XDG_CACHE_HOME/deepframes``, else
    ``~/.cache/deepframes``, made if needed; None when it cannot be made (read-only home)."""
    if os.environ.get(CACHE_ENV):
        base = Path(os.environ[CACHE_ENV])
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")) / "deepframes"
    folder = base / part
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder
