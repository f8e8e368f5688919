"""Framework adapters behind one interface: load a model once, run named NumPy batches.

``load_engine`` picks the adapter from the model's file (``.onnx``, ``.keras``/``.h5`` or an
exported SavedModel folder, ``.pt``/``.pt2``) or from ``framework=`` for factories. Frameworks
are imported only when a model needs them.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass

from .base import Engine as Engine
from .base import MissingEngineError as MissingEngineError
from .base import Placement as Placement
from .base import TensorInfo as TensorInfo

@dataclass(frozen=True)
class EngineEntry:
    """One framework adapter: where its class lives, the files it reads, the packages it needs."""

    framework: str
    module: str  # relative to this package
    class_name: str
    extensions: tuple[str, ...]
    packages: tuple[tuple[str, tuple[str, ...]], ...]  # (import name, distributions that provide it)
    extra: str  # pip install 'deepframes[extra]'

    def engine_class(self) -> type[Engine]:
        return getattr(importlib.import_module(self.module, __name__), self.class_name)


# Adding an engine is one module beside this one and one entry here.
ENGINES: dict[str, EngineEntry] = {
    entry.framework: entry
    for entry in (
        EngineEntry("onnx", ".onnx", "OnnxEngine", (".onnx",),
                    (("onnxruntime", ("onnxruntime", "onnxruntime-gpu")),), "onnx"),
        EngineEntry("keras", ".keras", "KerasEngine", (".keras", ".h5"),
                    (("tensorflow", ("tensorflow-cpu", "tensorflow")), ("keras", ("keras",))), "tf"),
        EngineEntry("torch", ".torch", "TorchEngine", (".pt2", ".pt", ".pth", ".ts"),
                    (("torch", ("torch",)),), "torch"),
    )
}
FRAMEWORKS = tuple(ENGINES)
_BY_EXTENSION = {extension: entry.framework for entry in ENGINES.values() for extension in entry.extensions}
MODEL_FILES = ", ".join(sorted(_BY_EXTENSION)) + " file (or an exported Keras SavedModel folder)"


def detect_framework(source: str | Callable) -> str:
    """The framework a model file belongs to, told from its name (a folder is a SavedModel)."""
    if callable(source):
        raise ValueError("A model factory needs framework='keras' or framework='torch'.")
    if not os.path.exists(source):
        raise FileNotFoundError(
            f"Model file not found: {source}. Give the path of a {MODEL_FILES}."
        )
    if os.path.isdir(source):
        return "keras"
    extension = os.path.splitext(source)[1].lower()
    if extension not in _BY_EXTENSION:
        raise ValueError(
            f"Cannot tell the framework of {source!r} from its extension {extension!r}. Expected one "
            f"of {sorted(_BY_EXTENSION)}, or pass framework= one of {list(FRAMEWORKS)}."
        )
    return _BY_EXTENSION[extension]


def load_engine(
    source: str | Callable,
    framework: str | None = None,
    placement: Placement | None = None,
    **options,
) -> Engine:
    """Load a model into the engine of its framework.

    Parameters
    ----------
    source : str or callable
        A model file or folder, or a function returning a Keras model or a torch ``nn.Module``.
    framework : {"onnx", "keras", "torch"}, optional
        Told from the file name when omitted.
    placement : Placement, optional
        Threads and GPU; defaults to those of the current Spark task (1 thread on the driver).
    **options
        Engine options: ``state_dict``, ``input_names``, ``output_names`` for PyTorch.

    Examples
    --------
    >>> engine = load_engine("../shared/models/squeezenet1.1.onnx")
    >>> engine.inputs[0].describe()
    'data_0: float32[?, 3, 224, 224]'
    """
    framework = framework or detect_framework(source)
    if framework not in ENGINES:
        raise ValueError(
            f"Invalid value received for argument `framework`. Expected one of {list(FRAMEWORKS)}. "
            f"Received: framework={framework!r}"
        )
    placement = placement or Placement.for_current_task()
    return ENGINES[framework].engine_class()(source, placement, **options)


__all__ = ["ENGINES", "Engine", "EngineEntry", "FRAMEWORKS", "MODEL_FILES", "MissingEngineError", "Placement", "TensorInfo", "detect_framework", "load_engine"]
