"""Stopping weak trials early: the median rule, and the board trials report their epochs to.

The board lives in the driver (:class:`BoardKeeper`, served over the driver's channel): after
every epoch a running trial sends its metric and gets back every other trial's metrics per epoch,
then asks the rule whether to stop. Trials on machines that share no disk see each other this way.
"""

from __future__ import annotations

import logging
import statistics
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..distributed.channel import ChannelAddress, ChannelClient, ChannelServer

logger = logging.getLogger(__name__)

# Seconds a trial waits for the driver's answer after an epoch.
_ANSWER_TIMEOUT_S = 30.0

# (this trial's metric per epoch, every other trial's metric per epoch, mode) -> stop?
PruningRule = Callable[[list[float], list[list[float]], str], bool]


def median_rule(mine: list[float], others: list[list[float]], mode: str, warmup: int = 1, minimum: int = 2) -> bool:
    """Stop when, after ``warmup`` epochs, this trial's latest metric is worse than the median of
    what at least ``minimum`` other trials reached at the same epoch (Google Vizier's rule)."""
    epoch = len(mine) - 1
    if epoch < warmup:
        return False
    peers = [values[epoch] for values in others if len(values) > epoch]
    if len(peers) < minimum:
        return False
    median = statistics.median(peers)
    return mine[epoch] < median if mode == "max" else mine[epoch] > median


@dataclass(frozen=True)
class Board:
    """A trial's view of the board: where to report its epochs and read the others'."""

    address: ChannelAddress  # the driver's BoardKeeper
    trial: int
    metric: str
    mode: str
    rule: bytes | None  # a pickled PruningRule, or None: never prune
    deadline: float | None  # time.time() past which the trial stops

    def report(self, epoch: int, metrics: dict[str, float]) -> bool:
        """Record this epoch; True when the trial should stop (pruned, or out of time)."""
        import time

        value = float(metrics.get(self.metric, float("nan")))
        try:
            with ChannelClient(self.address, rank=self.trial) as client:
                answer = client.ask({"kind": "epoch", "trial": self.trial, "value": value}, _ANSWER_TIMEOUT_S)
            mine, others = list(answer["mine"]), [list(curve) for curve in answer["others"]]
        except OSError as error:  # the trial goes on unpruned; its curve is lost to the driver
            logger.warning("Trial %d could not report epoch %d to the driver (%s)", self.trial, epoch + 1, error)
            mine, others = [value], []
        if self.deadline is not None and time.time() > self.deadline:
            raise TimeoutError("the search's time_budget ran out")
        if self.rule is None:
            return False
        from pyspark import cloudpickle

        if cloudpickle.loads(self.rule)(mine, others, self.mode):
            raise TrialPruned(f"pruned after epoch {epoch + 1}")
        return False


class BoardKeeper:
    """The board, in the driver: every trial's metric per epoch, served to the trials over the
    driver's channel (close it when the search ends).

    Examples
    --------
    >>> with BoardKeeper("127.0.0.1") as keeper:
    ...     first = Board(keeper.address, 0, "val_accuracy", "max", None, None)
    ...     second = Board(keeper.address, 1, "val_accuracy", "max", None, None)
    ...     _ = first.report(0, {"val_accuracy": 0.5}), second.report(0, {"val_accuracy": 0.7})
    ...     keeper.curve(0), keeper.curve(1), keeper.curve(2)
    ([0.5], [0.7], [])
    """

    def __init__(self, host: str) -> None:
        self._lock = threading.Lock()
        self._curves: dict[int, list[float]] = {}
        self._server = ChannelServer(host, self._on_message)
        self.address = self._server.address

    def __enter__(self) -> BoardKeeper:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _on_message(self, message: dict[str, Any]) -> dict[str, Any] | None:
        if message.get("kind") != "epoch":
            return None
        trial = int(message["trial"])
        with self._lock:
            mine = self._curves.setdefault(trial, [])
            mine.append(float(message["value"]))
            others = [list(curve) for other, curve in self._curves.items() if other != trial]
            return {"kind": "curves", "mine": list(mine), "others": others}

    def curve(self, trial: int) -> list[float]:
        """What ``trial`` reported so far, epoch by epoch."""
        with self._lock:
            return list(self._curves.get(trial, []))

    def close(self) -> None:
        self._server.close()


class TrialPruned(Exception):
    """Raised between epochs when the pruning rule stops a trial."""


__all__ = ["Board", "BoardKeeper", "PruningRule", "TrialPruned", "median_rule"]
