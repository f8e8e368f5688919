"""Errors that executors hand back to the driver as pickled objects, never as text to parse.

A task that can finish hands its error back as a result (``result_bytes``: block reductions do
this). A task that must fail, so that Spark stops the others (a barrier rank), raises an error
whose message carries the same pickle on one marked line (``error_line``); the driver finds it in
Spark's error with ``error_in`` and gets the original object back.
"""

from __future__ import annotations

import base64
import pickle
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_MARK = "deepframes-executor-error:"
_LINE = re.compile(re.escape(_MARK) + r"([A-Za-z0-9+/=]+)")


@dataclass(frozen=True)
class ExecutorError:
    """An error raised on an executor, carried back to the driver as a result."""

    error: Exception


def result_bytes(payload: object) -> bytes:
    """A task's result (or its ``ExecutorError``) as bytes for a binary column."""
    return pickle.dumps(payload)


def results_of(payloads: Sequence[bytes]) -> list[Any]:
    """Unpickle the tasks' results; raise the first executor error among them.

    >>> results_of([result_bytes(1), result_bytes(2)])
    [1, 2]
    >>> results_of([result_bytes(ExecutorError(ValueError("bad cell")))])
    Traceback (most recent call last):
    ...
    ValueError: bad cell
    """
    results = [pickle.loads(payload) for payload in payloads]
    for result in results:
        if isinstance(result, ExecutorError):
            raise result.error
    return results


def error_line(error: Exception) -> str:
    """One line to end a failing task's error message with: ``error`` pickled."""
    return _MARK + base64.b64encode(pickle.dumps(ExecutorError(error))).decode("ascii")


def error_in(text: str) -> Exception | None:
    """The error a task put in its message with ``error_line``, found in Spark's error text.

    >>> error_in(f"Task 3 failed: RankFailure: ...\\n{error_line(KeyError('rank'))}\\n\\tat ...")
    KeyError('rank')
    >>> error_in("Job aborted: executor lost") is None
    True
    """
    match = _LINE.search(text)
    if match is None:
        return None
    try:
        carried = pickle.loads(base64.b64decode(match[1]))
    except Exception:  # noqa: BLE001 - a cut or garbled line: no structured error then
        return None
    return carried.error if isinstance(carried, ExecutorError) else None


__all__ = ["ExecutorError", "error_in", "error_line", "result_bytes", "results_of"]
