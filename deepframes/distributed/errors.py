"""What ``Distributor.run`` raises when a rank fails, and the driver's record of a run's ranks."""

from __future__ import annotations

import threading
from typing import Any

from .channel import print_line
from .process import RankOutcome


class RankFailedError(RuntimeError):
    """A rank of a distributed run failed; carries the first failing rank and its traceback.

    Attributes
    ----------
    rank : int or None
        The rank that failed first (None when Spark failed the job before any rank reported).
    error_type : str
        The name of the exception type raised in that rank (``"RankProcessDied"`` when its process
        was killed, ``"TimeoutError"`` when the run passed its ``timeout``).
    remote_traceback : str
        The traceback printed in that rank.
    attempts : int
        How many attempts were made.
    """

    def __init__(
        self,
        message: str,
        *,
        rank: int | None,
        error_type: str,
        remote_traceback: str = "",
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.rank = rank
        self.error_type = error_type
        self.remote_traceback = remote_traceback
        self.attempts = attempts

    @classmethod
    def from_outcome(cls, outcome: RankOutcome, attempts: int) -> RankFailedError:
        tail = "\n".join(outcome.tail[-10:])
        parts = [
            f"Rank {outcome.rank} failed first, with {outcome.error_type}: {outcome.message}"
        ]
        if outcome.traceback:
            parts.append(
                f"Traceback from rank {outcome.rank}:\n{outcome.traceback.rstrip()}"
            )
        if tail and not outcome.traceback:
            parts.append(f"Last output lines of rank {outcome.rank}:\n{tail}")
        parts.append(
            f"({attempts} attempt(s); retry with Distributor(max_retries=...) to resubmit the run.)"
        )
        return cls(
            "\n".join(parts),
            rank=outcome.rank,
            error_type=outcome.error_type,
            remote_traceback=outcome.traceback,
            attempts=attempts,
        )


class RunMonitor:
    """The driver's view of one attempt: prints rank lines, keeps the first failure, wakes waiters."""

    def __init__(self) -> None:
        self.wake = threading.Event()
        self._lock = threading.Lock()
        self._failures: list[RankOutcome] = []

    def on_message(self, message: dict[str, Any]) -> None:
        if message.get("kind") == "line":
            print_line(message)
        elif message.get("kind") == "failure":
            self.record(RankOutcome.from_message(message))

    def on_line(self, rank: int, stream: str, line: str) -> None:
        print_line({"rank": rank, "stream": stream, "line": line})

    def record(self, outcome: RankOutcome) -> None:
        with self._lock:
            self._failures.append(outcome)
        self.wake.set()

    @property
    def first_failure(self) -> RankOutcome | None:
        with self._lock:
            return min(
                self._failures, key=lambda outcome: outcome.finished_at, default=None
            )
