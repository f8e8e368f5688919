"""One rank's process: start ``_child.py``, stream its output line by line, collect its outcome."""

from __future__ import annotations

import collections
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .context import RankContext

_CHILD_SCRIPT = str(Path(__file__).with_name("_child.py"))
_TAIL_LINES = 20

LineSink = Callable[[int, str, str], None]


@dataclass(frozen=True)
class RankOutcome:
    """How a rank ended: its pickled value, or its error with traceback and last output lines."""

    rank: int
    ok: bool
    value: bytes | None = None
    error_type: str = ""
    message: str = ""
    traceback: str = ""
    tail: tuple[str, ...] = ()
    finished_at: float = 0.0

    def to_message(self) -> dict[str, Any]:
        """The failure as a channel message (JSON-safe)."""
        return {
            "kind": "failure",
            "error_type": self.error_type,
            "message": self.message,
            "traceback": self.traceback,
            "tail": list(self.tail),
            "finished_at": self.finished_at,
        }

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> RankOutcome:
        return cls(
            rank=int(message["rank"]),
            ok=False,
            error_type=message["error_type"],
            message=message["message"],
            traceback=message["traceback"],
            tail=tuple(message.get("tail", ())),
            finished_at=float(message.get("finished_at", 0.0)),
        )


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code} before reporting a result"


class RankProcess:
    """A started rank: ``fn`` runs in a fresh Python process in its own process group.

    The process starts before the rendezvous and loads ``fn`` (importing what it needs) meanwhile;
    :meth:`begin` then hands it its context and shard, and ``fn`` runs. The spec is the call to
    make: ``payload`` (cloudpickled ``(fn, args, kwargs)``), ``rank``, ``wants_ctx``,
    ``return_value`` and ``max_result_bytes``.
    """

    def __init__(
        self, spec: dict[str, Any], workdir: str, env: dict[str, str], on_line: LineSink
    ) -> None:
        self.rank = spec["rank"]
        spec_path = os.path.join(workdir, f"rank-{self.rank}.spec")
        self._result_path = os.path.join(workdir, f"rank-{self.rank}.result")
        with open(spec_path, "wb") as sink:
            pickle.dump(spec, sink, protocol=pickle.HIGHEST_PROTOCOL)
        self._tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-u",
                _CHILD_SCRIPT,
                spec_path,
                self._result_path,
                str(os.getpid()),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        self._pumps = [
            threading.Thread(
                target=self._pump, args=(stream, name, on_line), daemon=True
            )
            for stream, name in (
                (self._process.stdout, "stdout"),
                (self._process.stderr, "stderr"),
            )
        ]
        for pump in self._pumps:
            pump.start()

    def _pump(self, stream: Any, name: str, on_line: LineSink) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            self._tail.append(line)
            on_line(self.rank, name, line)
        stream.close()

    def begin(
        self, context: RankContext, shard_path: str | None, shard_rows: int
    ) -> None:
        """Hand the rank its context (and rendezvous environment) and shard: ``fn`` starts."""
        start = {
            "context": context,
            "environment": context.environment(),
            "shard_path": shard_path,
            "shard_rows": shard_rows,
        }
        try:
            self._process.stdin.write(
                pickle.dumps(start, protocol=pickle.HIGHEST_PROTOCOL)
            )
            self._process.stdin.close()
        except (BrokenPipeError, ValueError):
            pass  # the process already ended: wait() reports how

    @property
    def pid(self) -> int:
        return self._process.pid

    def wait(self, timeout: float | None = None) -> RankOutcome:
        """Wait for the process to end (raises ``subprocess.TimeoutExpired``) and read its outcome."""
        code = self._process.wait(timeout)
        for pump in self._pumps:
            pump.join(5)
        finished_at = time.time()
        try:
            with open(self._result_path, "rb") as source:
                result = pickle.load(source)
        except FileNotFoundError:
            return RankOutcome(
                self.rank,
                ok=False,
                error_type="RankProcessDied",
                message=f"rank {self.rank}'s process (pid {self.pid}) {_describe_exit(code)}",
                tail=tuple(self._tail),
                finished_at=finished_at,
            )
        if result["ok"]:
            return RankOutcome(
                self.rank, ok=True, value=result["value"], finished_at=finished_at
            )
        return RankOutcome(
            self.rank,
            ok=False,
            error_type=result["type"],
            message=result["message"],
            traceback=result["traceback"],
            tail=tuple(self._tail),
            finished_at=finished_at,
        )

    def kill(self) -> None:
        """Kill the rank and everything it started (its process group)."""
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._process.wait()


def child_environment(
    gpus: tuple[str, ...], cpu_threads: int | None = None
) -> dict[str, str]:
    """This process's environment with the rank's GPUs; the child imports as this process does.

    ``CUDA_VISIBLE_DEVICES`` is set here, before the child imports anything; the rendezvous
    variables follow with :meth:`RankProcess.begin`.
    """
    env = dict(os.environ)
    env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    env["PYTHONPATH"] = os.pathsep.join(entry for entry in sys.path if entry)
    env["PYTHONUNBUFFERED"] = "1"
    if cpu_threads:
        env.setdefault("OMP_NUM_THREADS", str(cpu_threads))
    return env


def make_spec(
    payload: bytes,
    *,
    rank: int,
    wants_ctx: bool,
    return_value: bool,
    max_result_bytes: int,
) -> dict[str, Any]:
    """The call a rank process makes (see :class:`RankProcess`)."""
    return {
        "payload": payload,
        "rank": rank,
        "wants_ctx": wants_ctx,
        "return_value": return_value,
        "max_result_bytes": max_result_bytes,
    }
