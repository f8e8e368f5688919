"""The one interface every framework adapter implements, and the task's threads and device."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TensorInfo:
    """A named model input or output: shape (``-1`` for dynamic sizes; None when the model
    cannot tell, as TorchScript files and factories) and NumPy dtype name."""

    name: str
    shape: tuple[int, ...] | None
    dtype: str

    def describe(self) -> str:
        if self.shape is None:
            return f"{self.name}: {self.dtype}[...]"
        dims = ", ".join("?" if size < 0 else str(size) for size in self.shape)
        return f"{self.name}: {self.dtype}[{dims}]"


class MissingEngineError(ImportError):
    """The framework an engine needs is not installed; the message says which extra to install."""


def require(module: str, extra: str, what: str):
    """Import ``module`` or say which deepframes extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingEngineError(
            f"{what} needs {module}: pip install 'deepframes[{extra}]'"
        ) from None


@dataclass(frozen=True)
class Placement:
    """Where an engine runs: CPU threads, and the GPU Spark gave the task (if any).

    ``in_task`` is False on the driver: there, process-wide settings (TensorFlow's and PyTorch's
    thread pools) are left as the user has them.
    """

    threads: int = 1
    gpu: str | None = None
    in_task: bool = False

    @classmethod
    def for_current_task(cls) -> Placement:
        """Threads from ``spark.task.cpus``; the GPU from ``TaskContext.resources()``."""
        from pyspark import TaskContext

        context = TaskContext.get()
        if context is None:
            return cls(threads=1)
        gpus = context.resources().get("gpu")
        gpu = gpus.addresses[0] if gpus is not None and gpus.addresses else None
        return cls(threads=max(1, int(context.cpus())), gpu=gpu, in_task=True)


class Engine(abc.ABC):
    """A loaded model: named NumPy inputs in, named NumPy outputs out, one batch at a time."""

    framework: str = ""

    # Set by each adapter when it loads its model.
    _inputs: list[TensorInfo]
    _outputs: list[TensorInfo]

    @property
    def inputs(self) -> list[TensorInfo]:
        """The model's inputs, in order."""
        return self._inputs

    @property
    def outputs(self) -> list[TensorInfo]:
        """The model's outputs, in order."""
        return self._outputs

    @abc.abstractmethod
    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Run one batch; ``feeds`` maps every input name to an array with the batch first.

        ``outputs`` names the outputs the caller needs (None: all). An engine may then compute only
        what those need, and returns at least them."""

    def check_feeds(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``feeds`` keyed by this model's input names. A single-input model takes its one feed
        under any name: Keras numbers unnamed inputs per process, so names differ by worker."""
        expected = [info.name for info in self.inputs]
        if len(expected) == 1 and len(feeds) == 1:
            return {expected[0]: next(iter(feeds.values()))}
        if set(feeds) != set(expected):
            raise ValueError(
                f"The {self.framework} model takes inputs {sorted(expected)}; received "
                f"{sorted(feeds)}. Map columns to input names with inputNames=[...]."
            )
        return dict(feeds)
