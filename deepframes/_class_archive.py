"""A class-data-sharing archive of Spark's classes, so the driver's JVM starts in half the time.

Java 17 can write the classes a run loaded, already parsed and verified, to an archive when the
JVM exits (``-XX:ArchiveClassesAtExit``) and map it at the next start
(``-XX:SharedArchiveFile``). Measured here: a local session started in 2.5 s instead of 4.5 s,
and its first job ran in 1.1 s instead of 2.1 s. An archive is only valid for the Java and the
class path that wrote it, so it is kept per (Java, Spark jars) in a cache folder
(``$DEEPFRAMES_CACHE``, else ``$XDG_CACHE_HOME/deepframes``, else ``~/.cache/deepframes``),
never in the project.

The first session of a process that finds no archive writes one when its JVM exits: this
process waits for the JVM at exit, checks that a JVM starts with the new archive, and only then
moves it into place (a truncated archive crashes the JVM that maps it, so none is ever used
unchecked). ``prepare()`` writes one ahead of time from a small run
of the work deepframes does (listing and reading files, Arrow UDFs, Parquet), which is what
``make setup`` does. ``DEEPFRAMES_CLASS_ARCHIVE=0`` turns the archive off.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import subprocess
from pathlib import Path

from ._cache import cache_folder
from ._java import find_java

logger = logging.getLogger(__name__)

ENV_SWITCH = "DEEPFRAMES_CLASS_ARCHIVE"
# An archive of a wrong Java or class path is skipped by the JVM with a warning on stdout.
_QUIET = "-Xlog:cds*=off -Xlog:class+path=off"
_DUMP_WAIT_SECONDS = 60.0

_pending: dict[str, Path] = {}


def _spark_jars() -> Path:
    from pyspark.find_spark_home import _find_spark_home

    return Path(_find_spark_home()) / "jars"


def archive_key() -> str | None:
    """What an archive is valid for: the Java executable and version, and Spark's jars (names
    and sizes). None when Java cannot be found."""
    java = find_java()
    if not java.usable:
        return None
    digest = hashlib.sha256(f"{os.path.realpath(java.executable)}\n{java.version}\n".encode())
    jars = _spark_jars()
    for jar in sorted(jars.glob("*.jar")):
        digest.update(f"{jar.name}:{jar.stat().st_size}\n".encode())
    return digest.hexdigest()[:20]


def archive_path(key: str) -> Path | None:
    folder = cache_folder("jvm")
    return None if folder is None else folder / f"spark-{key}.jsa"


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1").lower() not in ("0", "false", "no", "off")


def java_options() -> str:
    """The driver JVM's class-sharing options: map the archive when there is one, else write one
    at exit (unless another process is writing it right now). Empty when turned off, when Java
    is unknown, or when the cache folder cannot be written."""
    if not enabled():
        return ""
    key = archive_key()
    if key is None:
        return ""
    archive = archive_path(key)
    if archive is None:
        return ""
    if archive.is_file():
        return f"-XX:SharedArchiveFile={archive} {_QUIET}"
    if _someone_writing(archive):
        return ""
    partial = archive.with_name(f"{archive.name}.{os.getpid()}.partial")
    _pending[key] = partial
    return f"-XX:ArchiveClassesAtExit={partial} {_QUIET}"


def _someone_writing(archive: Path) -> bool:
    """Whether a live process is writing this archive; partial files of dead ones are removed."""
    writing = False
    for partial in archive.parent.glob(f"{archive.name}.*.partial"):
        pid = int(partial.name.rsplit(".", 2)[-2]) if partial.name.rsplit(".", 2)[-2].isdigit() else 0
        if pid and pid != os.getpid() and _alive(pid):
            writing = True
        else:
            partial.unlink(missing_ok=True)
    return writing


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def launched(process: subprocess.Popen | None) -> None:
    """Called once the driver's JVM started: when it writes an archive at exit, have this process
    wait for it then and move the archive into place."""
    if not _pending or process is None:
        return
    key, partial = next(iter(_pending.items()))
    _pending.clear()
    atexit.register(_finish, process, partial, archive_path(key), _class_path(process.pid))


def _class_path(pid: int) -> str | None:
    """The ``-cp`` of a running JVM (an archive is checked against the class path it was made for)."""
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return None
    for flag, value in zip(arguments, arguments[1:]):
        if flag in ("-cp", "-classpath", "--class-path"):
            return value
    return None


def _finish(process: subprocess.Popen, partial: Path, archive: Path, class_path: str | None) -> None:
    """At exit: let the JVM stop (its stdin closes), wait for it to write the archive, check it."""
    _stop_spark()
    try:
        if process.poll() is None and process.stdin is not None:
            process.stdin.close()  # PySpark's JVM exits when its stdin closes
        process.wait(_DUMP_WAIT_SECONDS)
    except (OSError, subprocess.TimeoutExpired):
        partial.unlink(missing_ok=True)
        return
    if process.returncode == 0 and partial.is_file() and class_path and _starts_with(partial, class_path):
        os.replace(partial, archive)
        logger.debug("Spark's classes archived in %s", archive)
    else:
        partial.unlink(missing_ok=True)


def _stop_spark() -> None:
    """Stop a session still running, as the JVM would be stopped under it (PySpark's accumulator
    server would print the broken connection)."""
    from pyspark import SparkContext

    context = SparkContext._active_spark_context
    if context is not None:
        try:
            context.stop()
        except Exception:  # noqa: BLE001 - the JVM is gone already
            pass


def _starts_with(archive: Path, class_path: str) -> bool:
    """Whether a JVM starts with ``archive`` mapped, every region's checksum verified (a damaged
    archive would crash the JVM that maps it)."""
    java = find_java().executable
    command = [java, f"-XX:SharedArchiveFile={archive}", "-Xshare:on", "-XX:+VerifySharedSpaces",
               "-cp", class_path, "-version"]
    try:
        completed = subprocess.run(command,
                                   capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return completed.returncode == 0


def _warm_up() -> None:
    """A small run of what deepframes does in the JVM, so its archive holds those classes."""
    import tempfile

    import numpy as np
    from PIL import Image

    import deepframes
    from deepframes.blocks import map_blocks

    with tempfile.TemporaryDirectory(prefix="deepframes-archive-") as folder:
        for index in range(4):
            Image.fromarray(np.full((32, 32, 3), index * 60, np.uint8)).save(f"{folder}/photo_{index}.jpg")
        spark = deepframes.session("local[2]", **{"spark.ui.showConsoleProgress": "false"})
        images = deepframes.read_images(folder, label="filename", size=16)
        images.write.parquet(f"{folder}/images.parquet")
        spark.read.parquet(f"{folder}/images.parquet").count()
        encoded = deepframes.read_images(folder, decode=False)
        map_blocks(lambda block: {"y": block["x"] * 2.0}, spark.range(64).toDF("x")).collect()
        encoded.select("path").toPandas()
        spark.stop()


def prepare() -> None:
    """Write the archive now, from a small run of deepframes' work, unless there is one (what
    ``make setup`` runs: ``python -c 'from deepframes._class_archive import prepare; prepare()'``)."""
    if enabled() and (key := archive_key()) is not None and (path := archive_path(key)) and not path.is_file():
        _warm_up()
