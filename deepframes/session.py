"""The SparkSession deepframes runs on: embedded ``local[*]`` by default, any master by argument."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pyspark.errors import PySparkRuntimeError
from pyspark.sql import SparkSession

from . import _class_archive
from ._java import require_java
from ._master import check_master_reachable

logger = logging.getLogger(__name__)

MASTER_ENV_VAR = "DEEPFRAMES_MASTER"
REMOTE_ENV_VAR = "DEEPFRAMES_REMOTE"
DEFAULT_MASTER = "local[*]"

# Applied only where the caller did not give the key.
_DEFAULT_CONF = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
    # A glob over image files lists each match as a path; listing hundreds of them needs no job.
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "4096",
}


# The settings the JVM of this process was launched with, when deepframes launched it. PySpark
# passes the first SparkContext's settings to spark-submit, which makes them Java system
# properties, and every later SparkConf reads those back: without forgetting them, a stopped
# session's settings (a task GPU amount, say) would silently return in the next session.
_LAUNCH_SETTINGS: dict[str, str] = {}

_LOCAL_MASTER = re.compile(r"local(\[(\d+|\*)(,\s*\d+)?\])?$")
# Masters whose executors run on this machine, with this interpreter and its packages.
_THIS_MACHINE = re.compile(r"local(\[.*\]|-cluster\[.*\])?$")


def is_local_master(master: str) -> bool:
    """Whether ``master`` runs executors as threads of the driver (``local``, ``local[N]``).

    >>> is_local_master("local[2]"), is_local_master("local-cluster[2,1,1024]")
    (True, False)
    """
    return bool(_LOCAL_MASTER.match(master))


def _this_machine_defaults(master: str) -> dict[str, str]:
    """Defaults for masters whose executors run here (``local``, ``local-cluster``): Python
    workers forked from a daemon that has deepframes' executor modules imported already
    (``deepframes._worker_daemon``), their temporary files in this process's scratch folder
    (removed at exit: Spark kills idle workers, and TensorFlow's autograph files were left in
    /tmp), and no web UI (0.2 s of every start; pass ``spark.ui.enabled=true`` to have it). A
    cluster's executors may lack deepframes until the job ships it, so their daemon stays
    PySpark's.

    >>> _this_machine_defaults("local[2]")["spark.python.daemon.module"]
    'deepframes._worker_daemon'
    >>> _this_machine_defaults("spark://cluster:7077")
    {}
    """
    if not _THIS_MACHINE.match(master):
        return {}
    from ._scratch import scratch_folder

    return {"spark.python.daemon.module": "deepframes._worker_daemon", "spark.ui.enabled": "false",
            "spark.executorEnv.TMPDIR": scratch_folder()}
_TASK_RESOURCE = re.compile(r"spark\.task\.resource\.([^.]+)\.amount$")


def resolve_master(master: str | None = None) -> str:
    """Return the master deepframes uses: the argument, else ``$DEEPFRAMES_MASTER``, else ``local[*]``.

    >>> resolve_master("local[2]")
    'local[2]'
    """
    return master or os.environ.get(MASTER_ENV_VAR) or DEFAULT_MASTER


def running_session() -> SparkSession | None:
    """The session this process already runs (active or default), or None; starts nothing."""
    try:
        return SparkSession.active()
    except PySparkRuntimeError:
        return None


# A local driver's heap starts small, and gives memory back after a collection: at most 30% of it
# free, and a collection every 10 s when the session is idle (Java's defaults keep a heap of up to
# 70% free, started at 1/64 of the machine's memory, for as long as the JVM lives: an idle session
# that had featurized held 850 MB here, 630 MB with these). While a long featurize runs, G1 grows
# the heap whenever collections take more than 1/13 of the time (GCTimeRatio=12), though what
# survives them is small (about 250 MB): the committed heap reached 1.8-2.1 GB on 6,000 photos and
# kept growing with the job. Allowing collections a fifth of the time (GCTimeRatio=4) held it at
# 0.76 GB, and the job was not slower (34 s against 39 s).
LEAN_HEAP = "-Xms64m -XX:GCTimeRatio=4 -XX:G1PeriodicGCInterval=10000 -XX:MinHeapFreeRatio=10 -XX:MaxHeapFreeRatio=30"

# The optimising JIT compiler (C2) takes a method only after 10x the calls and loop turns of
# Java's defaults: each Spark query's generated code is short-lived and no longer worth it,
# while the hot loops of long scans (Arrow conversion of millions of rows) still get there.
PATIENT_JIT = ("-XX:Tier4InvocationThreshold=50000 -XX:Tier4MinInvocationThreshold=6000 "
               "-XX:Tier4CompileThreshold=150000 -XX:Tier4BackEdgeThreshold=400000")


def _driver_java_options(master: str) -> str:
    """The driver JVM's options when the caller gives none: our log4j configuration, the class
    archive (``_class_archive``), and for a local master a patient optimising compiler
    (``PATIENT_JIT``) and a heap that gives memory back (``LEAN_HEAP``).

    In local mode the executors are threads of this JVM, and their job is mostly to move rows
    between files and Python workers. With Java's defaults the optimising compiler (C2)
    recompiles each query's generated code: measured on 2 cores, 1.8 CPU-s of every 4 s featurize
    run, time taken from the Python workers that run the model. The quick compiler alone
    (``-XX:TieredStopAtLevel=1``) saved that but made the JVM's own Arrow work twice as slow
    (a pandas UDF over 3 million rows: 0.81 s -> 1.65 s); raising C2's thresholds tenfold keeps
    both (featurize 5.6 -> 4.6 s, the pandas UDF 0.85 s). Pass your own
    ``spark.driver.extraJavaOptions`` to change it.

    >>> "-XX:Tier4InvocationThreshold=50000" in _driver_java_options("local[2]")
    True
    >>> "Tier4" in _driver_java_options("spark://cluster:7077")
    False
    """
    config = Path(__file__).with_name("log4j2.properties")
    # Java ignores TMPDIR; its temporary files (native libraries it unpacks, Spark's local folders
    # when spark.local.dir is not set) go where this process's do.
    options = f"-Dlog4j.configurationFile=file:{config} -Djava.io.tmpdir={tempfile.gettempdir()}"
    if _LOCAL_MASTER.match(master):
        options += f" {PATIENT_JIT} {LEAN_HEAP}"
    sharing = _class_archive.java_options()
    return f"{options} {sharing}" if sharing else options


def _forget_launch_settings(keep: Mapping[str, str]) -> None:
    """Clear the JVM's system properties left by the session that launched it, except ``keep``."""
    from pyspark import SparkContext

    jvm = SparkContext._jvm
    if jvm is None:
        return
    for key in _LAUNCH_SETTINGS:
        if key not in keep:
            jvm.java.lang.System.clearProperty(key)
    _LAUNCH_SETTINGS.clear()


def check_schedulable(master: str, settings: Mapping[str, str]) -> None:
    """Refuse settings under which no task of a local session could ever start.

    In local mode tasks run inside the driver, which Spark gives no custom resources (GPUs,
    FPGAs): with a task resource amount set, every job waits for one forever.
    """
    if not _LOCAL_MASTER.match(master):
        return
    for key, value in settings.items():
        match = _TASK_RESOURCE.match(key)
        if match and float(value or 0) > 0:
            resource = match.group(1)
            raise ValueError(
                f"No job could run on this session: {key}={value} asks for a {resource!r} per task, "
                f"but on {master} tasks run in the driver, to which Spark gives no {resource!r}, so "
                f"every job would wait forever. Expected no spark.task.resource.*.amount in local "
                f"mode. Remove {key} (tasks in local mode see the machine's GPUs anyway), or use a "
                f"cluster master such as local-cluster[1,2,1024] with "
                f"spark.worker.resource.{resource}.amount, spark.executor.resource.{resource}.amount "
                f"and a discovery script."
            )


def is_connect(spark: Any) -> bool:
    """Whether ``spark`` is a Spark Connect session (no SparkContext, no JVM on this side)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def session(master: str | None = None, app_name: str = "deepframes", *, remote: str | None = None,
            ship_env: bool | str = False, **conf: Any) -> SparkSession:
    """Return a SparkSession set up for deepframes, starting one when none is running.

    Parameters
    ----------
    master : str, optional
        Any Spark master URL (``local[2]``, ``local-cluster[2,1,1024]``, ``spark://host:7077``,
        ``yarn``, ``k8s://...``). Defaults to ``$DEEPFRAMES_MASTER``, then spark-submit's
        ``--master`` when spark-submit started this script, then ``local[*]``.
    app_name : str
        The application name shown in the Spark UI.
    remote : str, optional
        A Spark Connect endpoint (``sc://host:15002``, or ``local[2]`` for a Connect server started
        here) instead of a master; defaults to ``$DEEPFRAMES_REMOTE``. Needs ``pyspark[connect]``.
    ship_env : bool or str
        Pack the running virtual environment (or the one at this path) once, with venv-pack or
        conda-pack, and have every executor unpack it and run its Python workers from it
        (``spark.archives``), for executors on machines without our packages. Cluster masters only.
    **conf
        Spark settings, e.g. ``session(**{"spark.executor.memory": "2g"})``. They always win over
        deepframes' defaults (Arrow on, quiet WARN logging, Python workers on this interpreter).

    Returns
    -------
    pyspark.sql.SparkSession

    Raises
    ------
    JavaNotFoundError
        When no Java 17+ is found; the message names the Java found and how to install one.
    ValueError
        When ``master`` differs from the master of the session this process already runs, when a
        ``spark://`` master does not answer within 5 s, or when no job could be scheduled (a task
        GPU amount on a local master), naming the setting.

    Notes
    -----
    A session started after ``spark.stop()`` starts from deepframes' defaults and the settings
    passed to this call: nothing of the stopped session's settings carries over (PySpark alone
    would read them back from the JVM, which keeps them as system properties).

    Examples
    --------
    >>> import deepframes
    >>> spark = deepframes.session("local[2]")
    >>> spark.range(3).count()
    3
    """
    settings = {str(key): str(value) for key, value in conf.items()}
    remote = remote or os.environ.get(REMOTE_ENV_VAR)
    if remote:
        return _connect_session(remote, app_name, settings)
    active = running_session()
    python = sys.executable
    if ship_env:
        python = _ship_environment(settings.get("spark.master") or resolve_master(master), ship_env, settings,
                                   active)
    if active is None:
        check_master_reachable(settings.get("spark.master") or resolve_master(master))
        require_java()
        settings.setdefault("spark.driver.extraJavaOptions",
                            _driver_java_options(settings.get("spark.master") or resolve_master(master)))
        # Spark's 1g default is tight for images in local mode, where executors share this heap.
        settings.setdefault("spark.driver.memory", "4g")
    elif master and active.sparkContext.master != master:
        raise ValueError(
            f"A SparkSession on {active.sparkContext.master} is already running, so a session on "
            f"{master} cannot start in this process. Call spark.stop() first, or use the running "
            "session (deepframes.session() without a master)."
        )
    # Python workers must run this interpreter (with its packages), not whatever `python3` is on PATH.
    if "spark.pyspark.python" not in settings:
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    options = {**_DEFAULT_CONF, **settings}
    if not _master_from_spark_submit(master):
        options.setdefault("spark.master", resolve_master(master))
    if active is None:
        options = {**_this_machine_defaults(options.get("spark.master", "")), **options}
    options.setdefault("spark.app.name", app_name)
    if active is None:
        check_schedulable(options.get("spark.master", ""), options)
        _forget_launch_settings(keep=options)
        from pyspark import SparkContext

        if SparkContext._jvm is None:  # this start launches the JVM with these settings
            _LAUNCH_SETTINGS.update(options)
    builder = SparkSession.builder
    for key, value in options.items():
        builder = builder.config(key, value)
    # PySpark reads the executors' Python from PYSPARK_PYTHON once, when the context starts.
    previous = os.environ.get("PYSPARK_PYTHON")
    if python != sys.executable:
        os.environ["PYSPARK_PYTHON"] = python
    try:
        if active is None:
            _launch_jvm(options)
        spark = builder.getOrCreate()
    finally:
        if previous is not None:
            os.environ["PYSPARK_PYTHON"] = previous
        elif python != sys.executable:
            os.environ.pop("PYSPARK_PYTHON", None)
    try:
        context = spark.sparkContext
        check_schedulable(context.master, dict(context.getConf().getAll()))
    except ValueError:
        if active is None:
            spark.stop()  # started here, unusable: leave none running
        raise
    if "spark.log.level" not in settings:
        spark.sparkContext.setLogLevel("WARN")
    logger.debug("Spark %s session on %s", spark.version, spark.sparkContext.master)
    return spark


# A local JVM's many threads each get a malloc arena of their own (up to 8 per core), which
# grow and stay: on 6,000 photos its memory outside the heap was 490 MB with glibc's default,
# 380 MB with two arenas, and the job was as fast (42 s both). The Python workers it starts
# inherit the setting. A value in the environment already is kept.
LEAN_MALLOC = {"MALLOC_ARENA_MAX": "2"}


@contextlib.contextmanager
def _jvm_environment(settings: Mapping[str, str]) -> Iterator[None]:
    """``settings`` in the environment the JVM is started with (PySpark passes it ``os.environ``),
    where not set already; this process's own environment is left as it was."""
    added = {key: value for key, value in settings.items() if key not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def _launch_jvm(options: Mapping[str, str]) -> None:
    """Start Spark's JVM, when none runs yet, in a process session of its own.

    A terminal's Ctrl-C goes to its whole foreground process group. PySpark keeps the JVM from
    dying of it, but the Python workers the JVM starts would each print a ``KeyboardInterrupt``
    traceback, and the JVM one per task. Outside that group only the driver sees Ctrl-C, and
    PySpark's handler cancels the running jobs. The JVM still exits with the driver: it stops when
    its stdin, a pipe from this process, closes.
    """
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    if SparkContext._gateway is not None or "PYSPARK_GATEWAY_PORT" in os.environ:
        return  # a JVM runs already, or spark-submit started this driver and its JVM
    local = bool(_LOCAL_MASTER.match(options.get("spark.master", "")))
    with SparkContext._lock, _jvm_environment(LEAN_MALLOC if local else {}):
        conf = SparkConf(loadDefaults=False).setAll(list(options.items()))
        SparkContext._gateway = launch_gateway(conf, popen_kwargs={"start_new_session": True})
        SparkContext._jvm = SparkContext._gateway.jvm
    _class_archive.launched(getattr(SparkContext._gateway, "proc", None))


def _master_from_spark_submit(master: str | None) -> bool:
    """Whether spark-submit started this driver and its --master should stand (no master given)."""
    return master is None and MASTER_ENV_VAR not in os.environ and "PYSPARK_GATEWAY_PORT" in os.environ


def _ship_environment(master: str, ship_env: bool | str, settings: dict[str, str], active: Any) -> str:
    """Add the settings that ship the packed environment; return the executors' Python."""
    from .shipping import EXECUTOR_PYTHON, ShipEnvError, pack_environment, ship_settings

    if master.startswith("local"):
        raise ShipEnvError(
            f"ship_env sends the environment to executors on other machines; master {master} runs them "
            "here, in this environment already. Expected a cluster master (spark://, yarn, k8s://). "
            "Drop ship_env for local masters."
        )
    if active is not None:
        raise ShipEnvError(
            f"ship_env takes effect when a session starts, and one on {active.sparkContext.master} is "
            "running. Expected no running session. Call spark.stop() first, then deepframes.session(..., "
            "ship_env=True)."
        )
    archive = pack_environment(None if ship_env is True else str(ship_env))
    settings.update({key: value for key, value in ship_settings(archive).items() if key not in settings})
    return EXECUTOR_PYTHON


def _connect_session(remote: str, app_name: str, settings: dict[str, str]) -> SparkSession:
    check_master_reachable(remote)
    if remote.startswith("local"):  # a Connect server started here runs this interpreter's workers
        require_java()
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.remote(remote).appName(app_name)
    # Connect has no Arrow fallback to turn off (it always uses Arrow).
    defaults = {key: value for key, value in _DEFAULT_CONF.items() if "fallback" not in key}
    for key, value in {**defaults, **settings}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    logger.debug("Spark %s Connect session on %s", spark.version, remote)
    return spark


# Connect session id -> its parallelism (asking costs a small job).
_CONNECT_PARALLELISM: dict[str, int] = {}


def default_parallelism(spark: SparkSession) -> int:
    """The number of tasks the cluster runs at once (at least 1)."""
    if not is_connect(spark):
        return max(1, int(spark.sparkContext.defaultParallelism))
    key = spark.session_id
    if key not in _CONNECT_PARALLELISM:
        from pyspark.sql import functions as F

        # spark.range without a partition count splits into the cluster's default parallelism.
        ids = spark.range(0, 1 << 16).select(F.spark_partition_id().alias("partition"))
        row = ids.agg(F.max("partition").alias("last")).first()
        _CONNECT_PARALLELISM[key] = max(1, int(row.last) + 1)
    return _CONNECT_PARALLELISM[key]
