"""What the ``deepframes`` command shows on a terminal: Spark's start-up noise off, Ctrl-C in one line,
progress in images."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from typing import TextIO

from pyspark.sql import SparkSession

from .apps.progress import ImageCount
from .session import _driver_java_options, resolve_master

# Native libraries netlib probes for (dev.ludovic.netlib): when one is missing, its JNI loader
# prints "dlopen(...) failed" on stderr (not through log4j) and Spark falls back to Java code.
_NETLIB = {"blas": "libblas.so.3", "lapack": "liblapack.so.3", "arpack": "libarpack.so.2"}


def _loadable(library: str) -> bool:
    try:
        ctypes.CDLL(library)
    except OSError:
        return False
    return True


def quiet_settings(master: str | None) -> dict[str, str]:
    """Spark settings (and, for local masters, the environment) that silence Spark's start-up noise.

    Two warnings every run printed without saying anything actionable: the hostname resolving to
    a loopback address (a local master binds to 127.0.0.1 instead, so there is nothing to
    resolve), and netlib's probe for native BLAS/LAPACK libraries that are not installed (they
    are not tried; Spark uses its Java code, as it would after the failed probe).
    """
    if resolve_master(master).startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # read by the JVM PySpark starts next
    skipped = [f"-Ddev.ludovic.netlib.{name}.allowNative=false"
               for name, library in _NETLIB.items() if not _loadable(library)]
    options = " ".join([_driver_java_options(resolve_master(master)), *skipped])
    return {"spark.driver.extraJavaOptions": options} if skipped else {}


_cleanup: threading.Thread | None = None


def quiet_interrupts(spark: SparkSession | None) -> None:
    """Make Ctrl-C stop the command quietly: Spark's logs off, then the running jobs cancelled.

    Called with None before the session starts (a Ctrl-C while Spark starts is quiet too; PySpark
    puts its own handler in while the SparkContext starts), and again with the session.

    Replaces PySpark's handler, which cancels the jobs from inside the interrupted thread: that
    thread is usually waiting for the JVM on its own connection, so the call fails (py4j logs two
    tracebacks), and Spark then logs every killed task. Here a thread of its own turns Spark's
    logs off and cancels the jobs; once they have stopped, ``KeyboardInterrupt`` is raised in the
    command, whose clean-up then runs. A second Ctrl-C interrupts at once, as Python does.
    """
    context = spark.sparkContext if spark is not None else None

    def on_interrupt(signum, frame) -> None:
        global _cleanup
        signal.signal(signal.SIGINT, signal.default_int_handler)
        logging.disable(logging.CRITICAL)  # py4j logs the call this interrupt breaks off
        _cleanup = threading.Thread(target=_cancel_quietly, args=(context,), name="deepframes-interrupt",
                                    daemon=True)
        _cleanup.start()
        _cleanup.join(_CANCEL_SECONDS + 5)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_interrupt)


_CANCEL_SECONDS = 10.0


def _cancel_quietly(context) -> None:
    if context is None:  # Spark was still starting: no job to cancel
        return
    try:
        context.setLogLevel("OFF")
        context.cancelAllJobs()
        tracker = context.statusTracker()
        deadline = time.monotonic() + _CANCEL_SECONDS
        while (tracker.getActiveJobsIds() or tracker.getActiveStageIds()) and time.monotonic() < deadline:
            time.sleep(0.1)
    except Exception:  # the JVM is gone already: nothing left to cancel
        pass


def interrupted() -> bool:
    """Whether Ctrl-C started the clean-up (an error raised after it is a consequence of it)."""
    return _cleanup is not None


def finish_interrupt(spark: SparkSession | None, timeout: float = 30.0) -> None:
    """End the clean-up Ctrl-C started: wait for it, then stop Spark while its logs are still off.

    Stopping here, before this process exits, matters: the JVM would otherwise stop itself when
    its stdin closes, while its thread pools still hold the cancelled jobs' callbacks, and print
    their rejection stack traces straight to stderr.
    """
    if _cleanup is not None:
        _cleanup.join(timeout)
    if spark is not None:
        try:
            spark.stop()
        except Exception:  # the JVM is gone already
            pass


class ProgressLine:
    """Prints ``ImageCount`` reports: one line rewritten in place on a terminal, else a line every
    ``every`` seconds, and the final count."""

    def __init__(self, verb: str, stream: TextIO | None = None, every: float = 10.0) -> None:
        self.verb = verb
        self.stream = stream or sys.stderr
        self.every = every
        self._last = time.monotonic()
        self._tty = self.stream.isatty()

    def __call__(self, count: ImageCount) -> None:
        line = count.describe(self.verb)
        if self._tty:
            self.stream.write(f"\r{line}\033[K" + ("\n" if count.final else ""))
        elif count.final or time.monotonic() - self._last >= self.every:
            self._last = time.monotonic()
            self.stream.write(line + "\n")
        self.stream.flush()
