"""The SparkSession deepframes runs on: embedded ``local[*]`` by default, any master by argument."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyspark.errors import PySparkRuntimeError
from pyspark.sql import SparkSession

from ._java import require_java

logger = logging.getLogger(__name__)

MASTER_ENV_VAR = "DEEPFRAMES_MASTER"
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


def _log4j_java_option() -> str:
    config = Path(__file__).with_name("log4j2.properties")
    return f"-Dlog4j.configurationFile=file:{config}"


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


def session(master: str | None = None, app_name: str = "deepframes", **conf: Any) -> SparkSession:
    """Return a SparkSession set up for deepframes, starting one when none is running.

    Parameters
    ----------
    master : str, optional
        Any Spark master URL (``local[2]``, ``local-cluster[2,1,1024]``, ``spark://host:7077``,
        ``yarn``, ``k8s://...``). Defaults to ``$DEEPFRAMES_MASTER``, then ``local[*]``.
    app_name : str
        The application name shown in the Spark UI.
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
        When ``master`` differs from the master of the session this process already runs, or when
        no job could be scheduled (a task GPU amount on a local master), naming the setting.

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
    active = running_session()
    if active is None:
        require_java()
        settings.setdefault("spark.driver.extraJavaOptions", _log4j_java_option())
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
    options.setdefault("spark.master", resolve_master(master))
    options.setdefault("spark.app.name", app_name)
    if active is None:
        check_schedulable(options["spark.master"], options)
        _forget_launch_settings(keep=options)
        from pyspark import SparkContext

        if SparkContext._jvm is None:  # this start launches the JVM with these settings
            _LAUNCH_SETTINGS.update(options)
    builder = SparkSession.builder
    for key, value in options.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
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


def default_parallelism(spark: SparkSession) -> int:
    """The number of tasks the cluster runs at once (at least 1)."""
    return max(1, int(spark.sparkContext.defaultParallelism))
