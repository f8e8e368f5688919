"""Stopping weak trials early: the median rule, and the board trials report their epochs to.

Each running trial appends its metric after every epoch to its own file on the board (a folder the
driver and the executors share); before its next epoch it reads the others' files and asks the
rule whether to stop.
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass

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
    """A trial's view of the board: where to write its epochs and read the others'."""

    folder: str
    trial: int
    metric: str
    mode: str
    rule: bytes | None  # a pickled PruningRule, or None: never prune
    deadline: float | None  # time.time() past which the trial stops

    def report(self, epoch: int, metrics: dict[str, float]) -> bool:
        """Record this epoch; True when the trial should stop (pruned, or out of time)."""
        import time

        path = os.path.join(self.folder, f"{self.trial}.json")
        mine = read_curve(path) + [float(metrics.get(self.metric, float("nan")))]
        with open(f"{path}.tmp", "w") as handle:
            json.dump(mine, handle)
        os.replace(f"{path}.tmp", path)
        if self.deadline is not None and time.time() > self.deadline:
            raise TimeoutError("the search's time_budget ran out")
        if self.rule is None:
            return False
        from pyspark import cloudpickle

        others = [read_curve(os.path.join(self.folder, name)) for name in os.listdir(self.folder)
                  if name.endswith(".json") and name != f"{self.trial}.json"]
        if cloudpickle.loads(self.rule)(mine, others, self.mode):
            raise TrialPruned(f"pruned after epoch {epoch + 1}")
        return False


class TrialPruned(Exception):
    """Raised between epochs when the pruning rule stops a trial."""


def read_curve(path: str) -> list[float]:
    try:
        with open(path) as handle:
            return list(json.load(handle))
    except (FileNotFoundError, json.JSONDecodeError):
        return []


__all__ = ["Board", "PruningRule", "TrialPruned", "median_rule", "read_curve"]
