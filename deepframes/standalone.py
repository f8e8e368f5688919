"""A Spark standalone cluster on this machine: a master and N workers from the pip-installed Spark.

For trying distribution on one machine and for the tests. The processes started are recorded in a
state folder (pid and start time each), and :func:`stop_cluster` stops exactly those, the executors
they started, and removes the folder.

With ``private_tmp=True`` each worker runs in a mount namespace of its own over a fresh tmpfs /tmp,
with its home and caches in there: its executors see none of the driver's temporary files, as on
another host, while folders outside /tmp stay shared (they play the cluster's NFS or HDFS).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import _private_tmp
from ._private_tmp import private_tmp_problem as private_tmp_problem

logger = logging.getLogger(__name__)

STATE_ENV_VAR = "DEEPFRAMES_CLUSTER_DIR"
_STATE_FILE = "cluster.json"
_MASTER_CLASS = "org.apache.spark.deploy.master.Master"
_WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
# The master and worker JVMs only schedule; executors get the worker's --memory.
_DAEMON_MEMORY = "512m"
_STOP_GRACE_S = 10.0
_MEMORY_PATTERN = re.compile(r"^(\d+)([mg])$")


@dataclass(frozen=True)
class ClusterProcess:
    """One process this module started: its role, pid and kernel start time (guards pid reuse)."""

    role: str
    pid: int
    start_time: int
    # The mount namespace of a private-/tmp worker ("mnt:[inode]"): its executors run there too.
    mount_namespace: str = ""

    def alive(self) -> bool:
        return _start_time(self.pid) == self.start_time


@dataclass(frozen=True)
class ClusterInfo:
    """A running standalone cluster: where to reach it and what was started for it.

    Attributes
    ----------
    master_url : str
        The URL to give ``deepframes.session(master=...)`` or ``--master``.
    web_ui : str
        The master's web page (workers, applications, executors).
    num_workers, cores, memory :
        Workers started, cores and memory each offers to executors.
    state_dir : str
        The folder holding the record of processes, the workers' folders and the logs.
    processes : list of ClusterProcess
        The master (first) and the workers.
    private_tmp : bool
        Whether each worker has a /tmp and a home of its own (see :func:`start_cluster`).
    """

    master_url: str
    web_ui: str
    num_workers: int
    cores: int
    memory: str
    state_dir: str
    processes: list[ClusterProcess] = field(default_factory=list)
    private_tmp: bool = False

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ClusterInfo:
        processes = [ClusterProcess(**entry) for entry in data.pop("processes", [])]
        return cls(**data, processes=processes)


def default_state_dir() -> str:
    """``$DEEPFRAMES_CLUSTER_DIR``, else ``~/.cache/deepframes/cluster``."""
    return os.environ.get(STATE_ENV_VAR) or str(Path.home() / ".cache" / "deepframes" / "cluster")


def spark_home() -> str:
    """The Spark installation pip installed with pyspark (has ``bin/spark-class`` and ``jars/``)."""
    from pyspark.find_spark_home import _find_spark_home

    return _find_spark_home()


def parse_memory(text: str) -> int:
    """Megabytes in a Spark memory amount such as ``1g`` or ``512m``.

    >>> parse_memory("1g"), parse_memory("512m")
    (1024, 512)
    """
    match = _MEMORY_PATTERN.match(str(text).strip().lower())
    if not match or int(match[1]) == 0:
        raise ValueError(
            f"The worker memory must be a positive amount in megabytes or gigabytes, such as 1g or "
            f"512m. Received: memory={text!r}. Pass --memory 1g."
        )
    return int(match[1]) * (1024 if match[2] == "g" else 1)


def check_capacity(num_workers: int, cores: int, memory: str) -> None:
    """Raise ValueError when this machine cannot hold ``num_workers`` workers of this size."""
    for name, value in (("workers", num_workers), ("cores", cores)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(
                f"The number of {name} must be a positive integer. Received: {name}={value!r}. "
                f"Pass --{name} 1 or more."
            )
    megabytes = parse_memory(memory)
    machine_cores = os.cpu_count() or 1
    if num_workers * cores > machine_cores:
        raise ValueError(
            f"{num_workers} workers x {cores} cores need {num_workers * cores} cores, but this machine has "
            f"{machine_cores}. Start at most {max(1, machine_cores // cores)} workers of {cores} cores "
            "(--workers/--cores), or use a real cluster."
        )
    available = _available_memory_mb()
    if available is not None and num_workers * megabytes > available:
        raise ValueError(
            f"{num_workers} workers x {memory} need {num_workers * megabytes} MB, but this machine has "
            f"{available} MB available. Give each worker less (--memory 1g) or start fewer (--workers)."
        )


def start_cluster(
    num_workers: int = 2,
    cores: int = 1,
    memory: str = "1g",
    *,
    state_dir: str | None = None,
    host: str = "127.0.0.1",
    timeout: float = 90.0,
    private_tmp: bool = False,
) -> ClusterInfo:
    """Start a standalone master and ``num_workers`` workers here; return once all registered.

    Parameters
    ----------
    num_workers : int
        Workers to start (each starts its own executor per application).
    cores, memory :
        What each worker offers (``--cores``, ``--memory`` of Spark's Worker).
    state_dir : str, optional
        Where the record of the processes, the workers' folders and the logs live; defaults to
        :func:`default_state_dir`. One cluster per folder.
    host : str
        The address the master and workers bind to.
    timeout : float
        Seconds to wait for the master and every worker.
    private_tmp : bool
        Start each worker in a mount namespace of its own (``unshare -m``) over a fresh tmpfs
        /tmp, with ``HOME``, ``XDG_CACHE_HOME``, ``TMPDIR`` and Spark's local folders in there:
        its executors see none of the driver's temporary files or caches, as on another host,
        while folders outside /tmp stay shared (as NFS or HDFS would be). Each worker binds a
        loopback address of its own (127.0.0.2, 127.0.0.3, ...), so Spark treats them as
        separate hosts. Needs root, or a kernel that lets users make namespaces
        (:func:`private_tmp_problem` says why not), and a ``state_dir`` outside /tmp (the
        workers keep their work folders there).

    Returns
    -------
    ClusterInfo

    Raises
    ------
    ValueError
        When a cluster recorded in ``state_dir`` is still running, the machine cannot hold the
        workers asked for, or cannot give them a private /tmp.
    RuntimeError
        When the processes did not come up within ``timeout`` (they are stopped again; the
        message holds the last lines of their log).

    Examples
    --------
    >>> import tempfile
    >>> info = start_cluster(1, state_dir=tempfile.mkdtemp())  # doctest: +SKIP
    >>> info.master_url  # doctest: +SKIP
    'spark://127.0.0.1:41234'
    >>> stop_cluster(info.state_dir).num_workers  # doctest: +SKIP
    1
    """
    check_capacity(num_workers, cores, memory)
    folder = Path(state_dir or default_state_dir())
    if private_tmp:
        _private_tmp.check_private_tmp(folder, host)
    running = cluster_status(str(folder))
    if running is not None:
        raise ValueError(
            f"A cluster is already running from {folder} (master {running.master_url}, "
            f"{running.num_workers} workers). Use it, or stop it first: deepframes cluster stop."
        )
    _remove_state(folder)  # a stale record of a cluster whose processes are gone
    for sub in ("logs", "work", "local"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    master_port, ui_port = _free_port(host), _free_port(host)
    processes: list[ClusterProcess] = []
    info = ClusterInfo(f"spark://{host}:{master_port}", f"http://{host}:{ui_port}", num_workers, cores, memory,
                       str(folder), processes, private_tmp)
    try:
        processes.append(_launch(folder, "master", _MASTER_CLASS,
                                 ["--host", host, "--port", str(master_port), "--webui-port", str(ui_port)]))
        _write_state(info)
        # A port taken between our choice and the master's bind makes Spark try the next one:
        # the addresses it really uses are the ones it logs.
        _wait_for(lambda: _logged_addresses(folder) is not None, timeout, "the master", folder)
        master_url, web_ui = _logged_addresses(folder)
        info = ClusterInfo(master_url, web_ui, num_workers, cores, memory, str(folder), processes, private_tmp)
        _write_state(info)
        _wait_for(lambda: _master_json(web_ui) is not None, timeout, "the master's web UI", folder)
        for index in range(num_workers):
            worker_host = _private_tmp.worker_host(host, index) if private_tmp else host
            processes.append(_launch(folder, f"worker-{index}", _WORKER_CLASS, [
                "--host", worker_host, "--port", "0", "--webui-port", "0", "--cores", str(cores),
                "--memory", memory, "--work-dir", str(folder / "work"), master_url,
            ], private_tmp=private_tmp))
            _write_state(info)
        _wait_for(lambda: _alive_workers(web_ui) >= num_workers, timeout,
                  f"{num_workers} workers to register", folder)
    except BaseException:
        stop_cluster(str(folder), missing_ok=True)
        raise
    logger.info("Standalone cluster at %s (UI %s), %d workers", master_url, web_ui, num_workers)
    return info


def cluster_status(state_dir: str | None = None) -> ClusterInfo | None:
    """The cluster recorded in ``state_dir`` if its master still runs, else None."""
    info = _read_state(Path(state_dir or default_state_dir()))
    if info is None or not info.processes or not info.processes[0].alive():
        return None
    return info


def alive_workers(info: ClusterInfo) -> int:
    """Workers the master currently lists as ALIVE (0 when it does not answer)."""
    return _alive_workers(info.web_ui)


def stop_cluster(state_dir: str | None = None, *, missing_ok: bool = False) -> ClusterInfo | None:
    """Stop the processes recorded in ``state_dir`` (and the executors they started); remove it.

    Raises
    ------
    ValueError
        When no cluster is recorded there (unless ``missing_ok``).
    """
    folder = Path(state_dir or default_state_dir())
    info = _read_state(folder)
    if info is None:
        if missing_ok:
            _remove_state(folder)
            return None
        raise ValueError(
            f"No cluster is recorded in {folder}, so there is nothing to stop. Start one with "
            f"deepframes cluster start, or point ${STATE_ENV_VAR} at the folder of a running one."
        )
    owned = [process for process in info.processes if process.alive()]
    # Executors (and their Python workers) are children of the workers: take them along, and
    # those whose worker died already (they run in the workers' folder). A private-/tmp worker's
    # namespace holds only what it started, also what left its family (re-parented).
    family = owned + [child for process in owned for child in _descendants(process.pid)]
    family += _processes(_private_tmp.pids_in([process.mount_namespace for process in owned]), "in-namespace")
    family += _running_in(folder / "work")
    family = list({process.pid: process for process in family}.values())
    for process in reversed(family):  # workers before the master, so they do not reconnect
        _signal(process, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_GRACE_S
    while any(process.alive() for process in family) and time.monotonic() < deadline:
        time.sleep(0.1)
    for process in family:
        _signal(process, signal.SIGKILL)
    _remove_state(folder)
    return info


def _launch(folder: Path, role: str, main_class: str, arguments: list[str], *,
            private_tmp: bool = False) -> ClusterProcess:
    home = spark_home()
    env = dict(os.environ)
    env.update({
        "SPARK_HOME": home,
        "SPARK_DAEMON_MEMORY": _DAEMON_MEMORY,
        "SPARK_LOG_DIR": str(folder / "logs"),
        "SPARK_LOCAL_DIRS": str(folder / "local"),
        "SPARK_WORKER_DIR": str(folder / "work"),
        # No spark-env.sh from elsewhere: this cluster is described by its arguments alone.
        "SPARK_CONF_DIR": str(folder),
    })
    command = [os.path.join(home, "bin", "spark-class"), main_class, *arguments]
    if private_tmp:
        env = _private_tmp.worker_environment(env)
        command = _private_tmp.worker_command(command)
    log = open(folder / "logs" / f"{role}.log", "ab")
    try:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,  # survives the command that started it; stopped by pid
        )
    finally:
        log.close()
    # unshare, sh and spark-class each exec the next, down to java, so the pid stays; its start
    # time identifies it later, and a private worker's mount namespace, once unshare made it.
    own_namespace = _private_tmp.mount_namespace(os.getpid())
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        start = _start_time(process.pid)
        if start is None:
            break
        namespace = _private_tmp.mount_namespace(process.pid) if private_tmp else ""
        if not private_tmp or namespace not in (None, own_namespace):
            return ClusterProcess(role, process.pid, start, namespace or "")
        time.sleep(0.01)
    start = _start_time(process.pid)
    if start is not None:  # alive, but unshare made no namespace within 5 s: do not keep it
        _signal(ClusterProcess(role, process.pid, start), signal.SIGKILL)
        raise RuntimeError(f"The {role} process (pid {process.pid}) got no mount namespace of its own within "
                           f"5 s; see {folder}/logs/{role}.log.")
    raise RuntimeError(f"The {role} process (pid {process.pid}) ended at once; see {folder}/logs/{role}.log.")


def _processes(pids: list[int], role: str) -> list[ClusterProcess]:
    found = []
    for pid in pids:
        start = _start_time(pid)
        if start is not None:
            found.append(ClusterProcess(role, pid, start))
    return found


def _wait_for(ready, timeout: float, what: str, folder: Path) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"Waited {timeout:.0f} s for {what}, in vain. Last log lines: {_log_tail(folder)}"
            )
        time.sleep(0.25)


def _log_tail(folder: Path, lines: int = 3) -> str:
    tails = []
    for log in sorted((folder / "logs").glob("*.log")):
        text = log.read_text(errors="replace").strip().splitlines()
        if text:
            tails.append(f"{log.name}: " + " | ".join(text[-lines:]))
    return "; ".join(tails) or "(no log output)"


_MASTER_URL_LINE = re.compile(r"Starting Spark master at (spark://\S+)")
_WEB_UI_LINE = re.compile(r"MasterWebUI.*started at (http://\S+)")


def _logged_addresses(folder: Path) -> tuple[str, str] | None:
    """The master URL and web UI address the master logged, once it logged both."""
    try:
        text = (folder / "logs" / "master.log").read_text(errors="replace")
    except OSError:
        return None
    url, ui = _MASTER_URL_LINE.search(text), _WEB_UI_LINE.search(text)
    return (url[1], ui[1].rstrip("/")) if url and ui else None


def _master_json(web_ui: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"{web_ui}/json/", timeout=2) as response:
            return json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None


def _alive_workers(web_ui: str) -> int:
    state = _master_json(web_ui)
    if state is None:
        return 0
    return sum(1 for worker in state.get("workers", []) if worker.get("state") == "ALIVE")


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z":  # a zombie has ended
        return None
    return int(fields[19])


def _descendants(pid: int) -> list[ClusterProcess]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat[stat.rindex(")") + 2:].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, queue = [], list(children.get(pid, []))
    while queue:
        child = queue.pop()
        start = _start_time(child)
        if start is not None:
            found.append(ClusterProcess("child", child, start))
        queue.extend(children.get(child, []))
    return found


def _running_in(folder: Path) -> list[ClusterProcess]:
    """Processes of this user whose working folder is inside ``folder``."""
    found = []
    root = str(folder.resolve())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        start = _start_time(int(entry.name))
        if start is not None and (cwd == root or cwd.startswith(root + os.sep)):
            found.append(ClusterProcess("executor", int(entry.name), start))
    return found


def processes_left(state_dir: str, mount_namespaces: list[str] | tuple[str, ...] = ()) -> list[int]:
    """Pids of processes still running inside a cluster's folder or in its private workers'
    mount namespaces (``ClusterProcess.mount_namespace``); none after :func:`stop_cluster`."""
    found = [process.pid for process in _running_in(Path(state_dir))] + _private_tmp.pids_in(list(mount_namespaces))
    return sorted(set(found))


def _signal(process: ClusterProcess, signum: int) -> None:
    if process.alive():
        try:
            os.kill(process.pid, signum)
        except ProcessLookupError:
            pass


def _available_memory_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def _write_state(info: ClusterInfo) -> None:
    path = Path(info.state_dir) / _STATE_FILE
    path.with_suffix(".tmp").write_text(json.dumps(info.as_dict(), indent=2))
    path.with_suffix(".tmp").replace(path)


def _read_state(folder: Path) -> ClusterInfo | None:
    try:
        return ClusterInfo.from_dict(json.loads((folder / _STATE_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _remove_state(folder: Path) -> None:
    # Only what this module writes: the record, logs, workers' and local folders.
    for sub in ("logs", "work", "local"):
        shutil.rmtree(folder / sub, ignore_errors=True)
    for name in (_STATE_FILE, "cluster.tmp"):
        (folder / name).unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass
