"""Output folders that appear whole or not at all: write into a sibling, then move into place."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..storage import is_local
from .errors import InputError

# A folder holding this file was written by deepframes and may be replaced by a new run.
MARKER = ".deepframes-output"


def check_output(out: str | Path) -> Path:
    """Refuse an existing folder that deepframes did not write (so a typo cannot erase data).

    >>> check_output("/nonexistent/deepframes-out").name
    'deepframes-out'
    """
    if not is_local(str(out)):
        raise InputError(
            f"--out must be a local or mounted folder; received {out}. The application writes its files "
            "on this machine before moving them into place. Write to a mounted path (e.g. /dbfs/..., "
            "/mnt/s3/...) or write locally and copy; stages and pipelines save to any Hadoop URI directly."
        )
    path = Path(str(out).removeprefix("file://").removeprefix("file:")).resolve()
    if path.exists() and (not path.is_dir() or (any(path.iterdir()) and not (path / MARKER).exists())):
        raise InputError(
            f"Output {path} already exists and was not written by deepframes; expected a new or empty "
            "folder. Choose another --out, or remove it."
        )
    return path


@contextlib.contextmanager
def staged_output(out: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; on success it replaces ``out``, on failure it goes.

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "report"
    >>> with staged_output(target) as folder:
    ...     _ = (folder / "results.csv").write_text("a,b\\n")
    >>> sorted(p.name for p in target.iterdir())
    ['.deepframes-output', 'results.csv']
    """
    final = check_output(out)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{final.name}.partial-", dir=final.parent))
    try:
        yield staging
        (staging / MARKER).write_text("written by deepframes; safe to replace with a new run\n")
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
