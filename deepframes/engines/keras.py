"""Keras 3 engine (TensorFlow backend): ``.keras``/``.h5`` files, exported SavedModels, factories."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .base import Engine, Placement, TensorInfo, require

logger = logging.getLogger(__name__)


def _configure_tensorflow(placement: Placement) -> None:
    """TF ignores OMP_NUM_THREADS: set its pools from the task's CPUs, once, before any op."""
    tf = require("tensorflow", "tf", "A Keras model")
    if not placement.in_task:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(placement.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        if placement.gpu is None:
            tf.config.set_visible_devices([], "GPU")
    except RuntimeError as error:  # TensorFlow already ran in this worker: its first settings stay
        logger.info("TensorFlow thread and device settings left as they were: %s", error)


def _tensor_info(tensor, fallback: str) -> TensorInfo:
    name = getattr(tensor, "name", None) or fallback
    shape = tuple(-1 if size is None else int(size) for size in tensor.shape)
    return TensorInfo(name.split(":")[0], shape, np.dtype(getattr(tensor, "dtype", "float32")).name)


def _to_numpy(value) -> np.ndarray:
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


def _producer_name(tensor) -> str | None:
    """The name of the layer that makes an output (what users call the output), if known."""
    history = getattr(tensor, "_keras_history", None)
    operation = getattr(history, "operation", None)
    return getattr(operation, "name", None)


class KerasEngine(Engine):
    """Runs a Keras model: a path to ``.keras``/``.h5``, a ``model.export()`` folder, or a
    function returning a model."""

    framework = "keras"

    def __init__(self, source: str | Callable[[], object], placement: Placement = Placement()) -> None:
        _configure_tensorflow(placement)
        keras = require("keras", "tf", "A Keras model")
        self._signature = None
        if callable(source):
            self.model = source()
        elif os.path.isdir(source):
            import tensorflow as tf

            loaded = tf.saved_model.load(source)
            self._signature = loaded.signatures["serving_default"]
            self.model = loaded
        else:
            self.model = keras.saving.load_model(source, compile=False)
        self._inputs, self._outputs = self._describe()

    def _describe(self) -> tuple[list[TensorInfo], list[TensorInfo]]:
        if self._signature is not None:
            specs = self._signature.structured_input_signature[1]
            inputs = [TensorInfo(name, tuple(-1 if s is None else s for s in spec.shape), spec.dtype.name)
                      for name, spec in specs.items()]
            outputs = [TensorInfo(name, tuple(-1 if s is None else s for s in spec.shape), spec.dtype.name)
                       for name, spec in self._signature.structured_outputs.items()]
            return inputs, outputs
        inputs = [_tensor_info(t, f"input_{i}") for i, t in enumerate(self.model.inputs)]
        names = [_producer_name(t) or f"output_{i}" for i, t in enumerate(self.model.outputs)]
        outputs = [TensorInfo(name, _tensor_info(t, name).shape, _tensor_info(t, name).dtype)
                   for name, t in zip(names, self.model.outputs)]
        return inputs, outputs

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        feeds = self.check_feeds(feeds)
        if self._signature is not None:
            import tensorflow as tf

            result = self._signature(**{name: tf.convert_to_tensor(value) for name, value in feeds.items()})
            return {name: value.numpy() for name, value in result.items()}
        ordered = [np.asarray(feeds[info.name], dtype=info.dtype) for info in self._inputs]
        result = self.model(ordered if len(ordered) > 1 else ordered[0], training=False)
        values = result if isinstance(result, (list, tuple)) else [result]
        if isinstance(result, dict):
            return {name: _to_numpy(value) for name, value in result.items()}
        return {info.name: _to_numpy(value) for info, value in zip(self._outputs, values)}
