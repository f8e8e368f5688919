"""The epoch loop both estimators share: history, early stopping, and a hook between epochs.

A framework supplies two functions, one epoch of training and one pass over the validation rows,
each returning sums over this rank's rows that ``allreduce`` adds up across ranks, so every rank
sees the same numbers and takes the same decisions (stop early, prune) at the same epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

# (epoch, metrics so far) -> True to stop training (pruned, out of time)
EpochHook = Callable[[int, dict[str, float]], bool]


@dataclass(frozen=True)
class TrainConfig:
    """Everything a rank needs to train, shipped as one small frozen object.

    ``model`` is a saved model file's bytes or a pickled factory; ``loss`` and ``optimizer`` are
    names, Keras config dicts, or pickled callables (PyTorch).
    """

    model: bytes
    model_is_factory: bool
    feature: object  # data.FeatureSpec
    loss: object
    optimizer: object
    learning_rate: float | None
    metrics: tuple[str, ...]
    epochs: int
    batch_size: int  # global
    shuffle: bool
    seed: int
    patience: int
    world_size: int
    probability_output: bool = True
    extra: tuple[tuple[str, object], ...] = field(default=())


@dataclass
class EpochSums:
    """Sums over a rank's rows for one epoch: ``{name: (total, rows)}``."""

    totals: dict[str, float] = field(default_factory=dict)
    rows: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, mean: float, rows: int) -> None:
        self.totals[name] = self.totals.get(name, 0.0) + float(mean) * rows
        self.rows[name] = self.rows.get(name, 0.0) + rows

    def pack(self, names: list[str]) -> np.ndarray:
        return np.array([self.totals.get(n, 0.0) for n in names] + [self.rows.get(n, 0.0) for n in names])

    @staticmethod
    def means(names: list[str], packed: np.ndarray) -> dict[str, float]:
        count = len(names)
        return {name: float(packed[i] / packed[count + i]) if packed[count + i] else math.nan
                for i, name in enumerate(names)}


def run_epochs(
    config: TrainConfig,
    train_epoch: Callable[[int], EpochSums],
    validate: Callable[[], EpochSums] | None,
    allreduce: Callable[[np.ndarray], np.ndarray],
    on_epoch: EpochHook | None = None,
) -> dict[str, list[float]]:
    """Train for ``config.epochs`` epochs; returns the history ``{metric: [value per epoch]}``.

    Stops early when the monitored loss (``val_loss``, else ``loss``) has not improved for
    ``config.patience`` epochs (0: never), or when ``on_epoch`` returns True.
    """
    history: dict[str, list[float]] = {}
    best, waited = math.inf, 0
    for epoch in range(config.epochs):
        sums = train_epoch(epoch)
        names = sorted(sums.totals)
        metrics = EpochSums.means(names, allreduce(sums.pack(names)))
        if validate is not None:
            held = validate()
            held_names = sorted(held.totals)
            metrics.update({f"val_{k}": v for k, v in EpochSums.means(held_names, allreduce(held.pack(held_names))).items()})
        for name, value in metrics.items():
            history.setdefault(name, []).append(value)
        monitored = metrics.get("val_loss", metrics.get("loss", math.nan))
        if monitored < best:
            best, waited = monitored, 0
        else:
            waited += 1
        if config.patience and waited >= config.patience:
            break
        if on_epoch is not None and on_epoch(epoch, metrics):
            break
    return history


def summary(history: dict[str, list[float]], world_size: int, seconds: float, num_rows: int) -> dict:
    """``summary_`` of a fitted model: final metrics, epochs run, time and throughput."""
    epochs = max((len(values) for values in history.values()), default=0)
    return {
        "epochs": epochs,
        "num_slots": world_size,
        "seconds": round(seconds, 3),
        "samples_per_second": round(num_rows * epochs / seconds, 1) if seconds > 0 else None,
        **{name: values[-1] for name, values in history.items() if values},
    }


__all__ = ["EpochHook", "EpochSums", "TrainConfig", "run_epochs", "summary"]
