"""Standalone workers that see none of the driver's temporary files, as on other machines: each in
a mount namespace of its own over a fresh tmpfs /tmp, with its home and caches in there, on a
loopback address of its own (``standalone.start_cluster(private_tmp=True)``)."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from pathlib import Path

# A private worker's own folders, inside its fresh /tmp: what a host keeps on its local disk.
_ROOT = "/tmp/deepframes-worker"
# Run in the worker's new mount namespace before it execs Spark's Worker (its command follows).
_SCRIPT = ('mount -t tmpfs -o mode=1777 tmpfs /tmp && '
           'mkdir -p "$HOME" "$XDG_CACHE_HOME" "$SPARK_LOCAL_DIRS" && exec "$@"')


def private_tmp_problem() -> str | None:
    """Why workers with a private /tmp cannot start here, or None when they can.

    They need ``unshare`` (util-linux) and the right to make a mount namespace and mount a tmpfs
    in it: root, or (with a user namespace) a kernel that allows unprivileged user namespaces.
    """
    if shutil.which("unshare") is None:
        return "the unshare command (util-linux) is not installed"
    try:
        probe = subprocess.run([*_unshare_command(), "sh", "-c", "mount -t tmpfs tmpfs /tmp"],
                               capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unshare did not run ({error})"
    if probe.returncode != 0:
        reason = probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else f"exit {probe.returncode}"
        return f"{' '.join(_unshare_command())} could not mount a tmpfs over /tmp ({reason})"
    return None


def check_private_tmp(folder: Path, host: str) -> None:
    """Raise ValueError when private workers cannot start here, bound to ``host``, with their
    work folders in ``folder``."""
    problem = private_tmp_problem()
    if problem is not None:
        raise ValueError(
            f"Workers with a private /tmp cannot start on this machine: {problem}. Expected root, or a "
            "kernel that allows unprivileged user namespaces. Run as root, or start the cluster without "
            "--private-tmp."
        )
    if not _is_loopback(host):
        raise ValueError(
            "Workers with a private /tmp each take a loopback address of their own (127.0.0.2, ...), "
            "so that Spark treats them as separate hosts; the master must bind to a loopback address "
            f"too. Received host={host!r}; pass host='127.0.0.1'."
        )
    resolved = folder.resolve()
    if resolved == Path("/tmp") or Path("/tmp") in resolved.parents:
        raise ValueError(
            "Workers with a private /tmp cannot see a state folder inside /tmp, where they keep their "
            f"work folders. Expected a folder outside /tmp; received state_dir={str(folder)!r}. Pass "
            "another one (--state-dir), e.g. under your home."
        )


def worker_host(host: str, index: int) -> str:
    """Worker ``index``'s own loopback address after the master's ``host``.

    Spark reads the shuffle files of another executor on the same host straight from its disk,
    which a private /tmp hides; between hosts it asks over the network, as it must here.

    >>> worker_host("127.0.0.1", 0), worker_host("127.0.0.1", 1)
    ('127.0.0.2', '127.0.0.3')
    """
    return str(ipaddress.ip_address(host) + 1 + index)


def worker_environment(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the worker's home, caches, TMPDIR and Spark's local folders inside its own
    /tmp (its executors and their Python workers inherit them)."""
    home = f"{_ROOT}/home"
    private = {**env, "HOME": home, "XDG_CACHE_HOME": f"{home}/.cache", "TMPDIR": "/tmp",
               "SPARK_LOCAL_DIRS": f"{_ROOT}/local"}
    private.pop("DEEPFRAMES_CACHE", None)  # a cache shared with the driver would hide what a host lacks
    return private


def worker_command(command: list[str]) -> list[str]:
    """``command`` run in a new mount namespace over a fresh /tmp; each step execs the next, so
    the process started keeps its pid down to ``command``'s."""
    return [*_unshare_command(), "sh", "-c", _SCRIPT, "sh", *command]


def mount_namespace(pid: int) -> str | None:
    """The mount namespace of ``pid`` (``mnt:[inode]``), or None when it is gone."""
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def pids_in(namespaces: list[str]) -> list[int]:
    """Processes in these mount namespaces; never this process's own namespace."""
    wanted = set(namespaces) - {"", mount_namespace(os.getpid())}
    if not wanted:
        return []
    return [int(entry.name) for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and mount_namespace(int(entry.name)) in wanted]


def _is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.version == 4 and address.is_loopback


def _unshare_command() -> list[str]:
    command = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:  # a user namespace of its own gives a user the right to mount
        command.insert(1, "--map-root-user")
    return command
