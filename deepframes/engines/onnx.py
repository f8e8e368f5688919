"""ONNX Runtime engine: an ``.onnx`` file with named inputs and outputs and a dynamic batch."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .base import Engine, Placement, TensorInfo, require

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

    >>> engine = OnnxEngine("../shared/models/squeezenet1.1.onnx")
    >>> [info.describe() for info in engine.outputs]
    ['features: float32[?, 512]', 'probabilities: float32[?, 1000]']
    """

    framework = "onnx"

    def __init__(self, path: str, placement: Placement = Placement()) -> None:
        ort = require("onnxruntime", "onnx", "An .onnx model")
        options = ort.SessionOptions()
        options.intra_op_num_threads = placement.threads
        options.inter_op_num_threads = 1
        providers: list = ["CPUExecutionProvider"]
        if placement.gpu is not None and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": int(placement.gpu)}))
        self.session = ort.InferenceSession(path, options, providers=providers)
        self._inputs = [_info(node) for node in self.session.get_inputs()]
        self._outputs = [_info(node) for node in self.session.get_outputs()]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = self.check_feeds(feeds)
        typed = {info.name: np.asarray(feeds[info.name], dtype=info.dtype) for info in self._inputs}
        values = self.session.run(None, typed)
        return {info.name: value for info, value in zip(self._outputs, values)}
