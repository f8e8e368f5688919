"""Ship the running Python environment to executors that lack our packages (``spark.archives``).

The environment is packed once with venv-pack (a virtual environment) or conda-pack (a conda
environment) and cached under a name made of its content (each installed distribution's name,
version and file hashes), so a second session reuses the archive until a package changes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from importlib import metadata
from pathlib import Path

logger = logging.getLogger(__name__)

ARCHIVE_ALIAS = "environment"
EXECUTOR_PYTHON = f"./{ARCHIVE_ALIAS}/bin/python"
CACHE_ENV_VAR = "DEEPFRAMES_ENV_CACHE"


class ShipEnvError(ValueError):
    """Raised when the environment cannot be shipped (not packable, tool missing, local master)."""


def running_environment() -> str:
    """The prefix of the virtual or conda environment this interpreter runs in.

    Raises ValueError when it runs in neither (a system Python cannot be packed)."""
    if sys.prefix != sys.base_prefix:
        return sys.prefix
    conda = os.environ.get("CONDA_PREFIX")
    if conda and Path(conda, "conda-meta").is_dir():
        return conda
    raise ShipEnvError(
        f"ship_env packs the running virtual or conda environment, but {sys.executable} runs in "
        f"neither (prefix {sys.prefix}). Expected a venv or a conda environment. Create one with the "
        "packages the job needs (python -m venv env && env/bin/pip install deepframes) and run from it, "
        "or pass ship_env='/path/to/env'."
    )


def environment_key(prefix: str) -> str:
    """A digest of what is installed in ``prefix``: Python version, distributions and their files."""
    digest = hashlib.sha256(f"{sys.version_info[:3]}:{os.path.realpath(prefix)}".encode())
    paths = sorted(str(path) for path in Path(prefix).glob("lib/python*/site-packages"))
    entries = []
    for distribution in metadata.distributions(path=paths):
        record = distribution.read_text("RECORD") or distribution.read_text("direct_url.json") or ""
        entries.append(f"{distribution.metadata['Name']}=={distribution.version}:"
                       f"{hashlib.sha256(record.encode()).hexdigest()}")
    for entry in sorted(entries):
        digest.update(entry.encode())
    return digest.hexdigest()[:20]


def editable_packages(prefix: str) -> list[str]:
    """Distributions installed editable (``pip install -e``) in ``prefix``: their code stays in a
    folder on this machine, so a packed copy of the environment would not hold it."""
    import json

    paths = [str(path) for path in Path(prefix).glob("lib/python*/site-packages")]
    found = []
    for distribution in metadata.distributions(path=paths):
        try:
            direct = json.loads(distribution.read_text("direct_url.json") or "{}")
        except ValueError:
            continue
        if direct.get("dir_info", {}).get("editable"):
            found.append(distribution.metadata["Name"])
    return sorted(found)


def cache_folder() -> Path:
    """``$DEEPFRAMES_ENV_CACHE``, else ``~/.cache/deepframes/envs``."""
    return Path(os.environ.get(CACHE_ENV_VAR) or Path.home() / ".cache" / "deepframes" / "envs")


def pack_environment(prefix: str | None = None) -> str:
    """Pack the environment at ``prefix`` (default: the running one) once; return the archive path.

    Raises
    ------
    ShipEnvError (a ValueError)
        When the environment cannot be packed (editable installs, files changed by hand, the packing
        tool missing); the message says what to change.
    """
    prefix = os.path.abspath(prefix or running_environment())
    is_conda = Path(prefix, "conda-meta").is_dir()
    if not is_conda and not Path(prefix, "pyvenv.cfg").is_file():
        raise ShipEnvError(
            f"{prefix} is not a virtual environment (no pyvenv.cfg) nor a conda environment (no conda-meta). "
            "Expected the folder of a venv or conda environment. Pass the environment's folder (the one "
            "holding bin/python) to ship_env."
        )
    editable = editable_packages(prefix)
    if editable:
        raise ShipEnvError(
            f"The environment {prefix} cannot be packed: {', '.join(editable)} installed editable (pip install -e) "
            "keeps its code outside the environment, so executors would not get it. Expected packages "
            "installed normally. Reinstall editable packages without -e (pip install .), or pack a clean "
            "environment and pass its folder: ship_env='/path/to/env'."
        )
    archive = cache_folder() / f"{'conda' if is_conda else 'venv'}-{environment_key(prefix)}.tar.gz"
    if archive.exists():
        return str(archive)
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(f"{archive.name}.{os.getpid()}.partial.tar.gz")
    tool = "conda-pack" if is_conda else "venv-pack"
    try:
        if is_conda:
            import conda_pack as packer
        else:
            import venv_pack as packer
    except ImportError:
        raise ShipEnvError(
            f"ship_env needs {tool} to pack {prefix}, and it is not installed. "
            f"Install it: pip install {tool} (or pip install 'deepframes[cluster]')."
        ) from None
    logger.info("Packing %s with %s into %s (once per content)", prefix, tool, archive)
    try:
        packer.pack(prefix=prefix, output=str(partial), force=True)
    except Exception as error:  # the packers raise their own exception types for every refusal
        partial.unlink(missing_ok=True)
        raise ShipEnvError(
            f"The environment {prefix} cannot be packed by {tool}: {error}. Expected an environment whose "
            "packages are installed normally. Reinstall editable packages without -e (pip install .), "
            "or pack a clean environment and pass its folder: ship_env='/path/to/env'."
        ) from None
    os.replace(partial, archive)
    return str(archive)


def ship_settings(archive: str) -> dict[str, str]:
    """The Spark settings that unpack ``archive`` on every executor and run Python from it."""
    return {
        "spark.archives": f"{archive}#{ARCHIVE_ALIAS}",
        "spark.executorEnv.PYSPARK_PYTHON": EXECUTOR_PYTHON,
    }
