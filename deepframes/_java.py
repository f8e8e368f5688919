"""Find the Java that Spark will start and tell whether it is recent enough."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

MIN_JAVA_VERSION = 17

INSTALL_HINT = (
    "install Java 17 or newer (Debian/Ubuntu: `sudo apt-get install openjdk-17-jre-headless`) "
    "or point JAVA_HOME at one"
)


@dataclass(frozen=True)
class JavaInfo:
    """The Java executable Spark would use and its major version (None when unknown)."""

    executable: str | None
    version: str | None
    major: int | None

    @property
    def usable(self) -> bool:
        return self.major is not None and self.major >= MIN_JAVA_VERSION

    def describe(self) -> str:
        if self.executable is None:
            return "none (no JAVA_HOME and no `java` on PATH)"
        if not os.access(self.executable, os.X_OK):
            return f"{self.executable}, which does not exist (JAVA_HOME={os.environ.get('JAVA_HOME')})"
        return f"{self.executable} (version {self.version or 'unknown'})"


class JavaNotFoundError(RuntimeError):
    """Raised when no Java that PySpark 4 can run on (17 or newer) is available."""


def _java_executable() -> str | None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        return os.path.join(java_home, "bin", "java")
    return shutil.which("java")


def parse_java_version(text: str) -> tuple[str | None, int | None]:
    """Return ``(version, major)`` from the output of ``java -version``.

    >>> parse_java_version('openjdk version "17.0.15" 2025-04-15')
    ('17.0.15', 17)
    >>> parse_java_version('java version "1.8.0_382"')
    ('1.8.0_382', 8)
    """
    match = re.search(r'version "([^"]+)"', text)
    if not match:
        return None, None
    version = match.group(1)
    parts = version.split(".")
    try:
        major = int(parts[1]) if parts[0] == "1" and len(parts) > 1 else int(re.match(r"\d+", parts[0]).group())
    except (AttributeError, ValueError):
        return version, None
    return version, major


@functools.lru_cache(maxsize=1)
def find_java() -> JavaInfo:
    """Locate Java the way Spark's launcher does (JAVA_HOME first, then PATH)."""
    executable = _java_executable()
    if executable is None or not os.access(executable, os.X_OK):
        return JavaInfo(executable, None, None)
    try:
        completed = subprocess.run(
            [executable, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return JavaInfo(executable, None, None)
    version, major = parse_java_version(completed.stderr + completed.stdout)
    return JavaInfo(executable, version, major)


def require_java() -> JavaInfo:
    """Return the Java found, or raise JavaNotFoundError saying what was found and what to do."""
    info = find_java()
    if not info.usable:
        raise JavaNotFoundError(
            f"Spark needs Java {MIN_JAVA_VERSION} or newer; found: {info.describe()}. "
            f"To fix it, {INSTALL_HINT}."
        )
    return info


def main() -> int:
    """Print the Java found; exit status 0 when Spark can use it (used by ``make``'s set-up)."""
    info = find_java()
    if info.usable:
        print(f"Java {info.version} at {info.executable}")
        return 0
    print(f"Spark needs Java {MIN_JAVA_VERSION} or newer; found: {info.describe()}.")
    return 1

