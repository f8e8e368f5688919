"""ONNX Runtime engine: an ``.onnx`` file with named inputs and outputs and a dynamic batch."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .base import Engine, Placement, TensorInfo, require

_LOG = logging.getLogger(__name__)

_ONNX_DTYPES = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8",
    "tensor(uint8)": "uint8", "tensor(bool)": "bool", "tensor(string)": "object",
}


def _info(node) -> TensorInfo:
    shape = tuple(size if isinstance(size, int) else -1 for size in (node.shape or []))
    return TensorInfo(node.name, shape, _ONNX_DTYPES.get(node.type, node.type))


class OnnxEngine(Engine):
    """Runs an ONNX model with ONNX Runtime, on the task's GPU when Spark gave it one.

    ONNX Runtime runs every node of a graph whichever outputs are asked for; asked for some of the
    outputs, the engine runs a copy of the graph cut down to the nodes they need (SqueezeNet's
    ``features`` skip the 1000-class convolution: a fifth of its work). Stages cut the graph on
    the driver before shipping it (``cut_graph``), so executors load the small graph directly.

    On the CPU, a batch runs in slices of at most ``CPU_SLICE_ROWS`` rows: ONNX Runtime's memory
    arena grows with the largest batch it has seen (SqueezeNet: about 550 MB at 64 rows, 120 MB
    at 4, measured here), and small slices stay in the CPU's caches (SqueezeNet's features at
    one thread: 3.7 ms a photo in slices of 4, 4.0 in 16, 4.7 in 64).

    >>> engine = OnnxEngine("../shared/models/squeezenet1.1.onnx")
    >>> [info.describe() for info in engine.outputs]
    ['features: float32[?, 512]', 'probabilities: float32[?, 1000]']
    >>> batch = {"data_0": np.zeros((2, 3, 224, 224), np.float32)}
    >>> {name: value.shape for name, value in engine.run(batch, outputs=["features"]).items()}
    {'features': (2, 512)}
    """

    framework = "onnx"

    def __init__(self, path: str, placement: Placement = Placement()) -> None:
        ort = require("onnxruntime", "onnx", "An .onnx model")
        options = ort.SessionOptions()
        options.intra_op_num_threads = placement.threads
        options.inter_op_num_threads = 1
        providers: list = ["CPUExecutionProvider"]
        self._slice_rows = CPU_SLICE_ROWS
        if placement.gpu is not None and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": int(placement.gpu)}))
            self._slice_rows = None  # a GPU wants whole batches
        self._open = lambda model: ort.InferenceSession(model, options, providers=providers)
        self._path = path
        self.session = self._open(path)
        self._inputs = [_info(node) for node in self.session.get_inputs()]
        self._outputs = [_info(node) for node in self.session.get_outputs()]
        self._sessions = {tuple(info.name for info in self._outputs): self.session}

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        feeds = self.check_feeds(feeds)
        typed = {info.name: np.asarray(feeds[info.name], dtype=info.dtype) for info in self._inputs}
        names = self._names(outputs)
        session = self._sessions.get(names)
        if session is None:
            session = self._sessions[names] = self._cut_down(names)
        rows = len(next(iter(typed.values()))) if typed else 0
        if self._slice_rows is None or rows <= self._slice_rows:
            return dict(zip(names, session.run(list(names), typed)))
        slices = [session.run(list(names), {name: value[start:start + self._slice_rows] for name, value in typed.items()})
                  for start in range(0, rows, self._slice_rows)]
        return {name: np.concatenate([values[index] for values in slices]) for index, name in enumerate(names)}

    def _names(self, outputs: Sequence[str] | None) -> tuple[str, ...]:
        """The outputs to compute, in the model's order (all of them when one is unknown: the
        caller then says which exist)."""
        every = tuple(info.name for info in self._outputs)
        if outputs is None or not set(outputs) <= set(every):
            return every
        return tuple(name for name in every if name in set(outputs))

    def _cut_down(self, names: tuple[str, ...]):
        """A session over the part of the graph that ``names`` need (the whole graph without
        the ``onnx`` package, or for a model it cannot cut)."""
        if not isinstance(self._path, str):
            return self.session
        part = cut_graph(self._path, names, [info.name for info in self._inputs])
        return self.session if part == self._path else self._open(part)


CPU_SLICE_ROWS = 4


def cut_graph(path: str, outputs: Sequence[str], inputs: Sequence[str] | None = None,
              digest: str | None = None) -> str:
    """An ONNX file of the part of ``path``'s graph that ``outputs`` need, or ``path`` itself when
    that is the whole graph, when the ``onnx`` package is missing, or when the graph cannot be cut.

    The cut file is made once per (model, outputs) and kept in deepframes' cache folder (the
    ``onnx`` package takes 0.6 s to import), named by the model's digest (``digest`` when the
    caller knows it, else read from the file).

    >>> cut = cut_graph("../shared/models/squeezenet1.1.onnx", ["features"])
    >>> [info.name for info in OnnxEngine(cut).outputs]
    ['features']
    """
    from .._cache import cache_folder
    from .._scratch import scratch_folder
    from ..models.spec import file_digest

    key = hashlib.sha256(f"{digest or file_digest(path)}:{','.join(sorted(outputs))}".encode()).hexdigest()[:24]
    target = Path(cache_folder("onnx") or scratch_folder()) / f"{key}.onnx"
    if target.is_file():
        return str(target)
    try:
        import onnx
        from onnx.utils import Extractor
    except ImportError:
        _LOG.info("onnx is not installed: the whole graph of %s runs for %s", path, list(outputs))
        return path
    try:
        model = onnx.load(path)
        if {value.name for value in model.graph.output} <= set(outputs):
            return path
        if inputs is None:
            weights = {tensor.name for tensor in model.graph.initializer}
            inputs = [value.name for value in model.graph.input if value.name not in weights]
        part = Extractor(model).extract_model(list(inputs), list(outputs))
        temporary = target.with_name(f"{target.name}.{os.getpid()}.partial")
        onnx.save(part, str(temporary))
        os.replace(temporary, target)
    except Exception as error:  # noqa: BLE001 - any graph the extractor cannot cut runs whole
        _LOG.warning("Running the whole graph of %s for %s: it cannot be cut (%s)", path, list(outputs), error)
        return path
    return str(target)
