"""User block functions: shipped once, loaded once per Python worker, errors named.

NumPy functions are called as they are. A ``tf.function`` is traced once per worker with the
row dimension left open, so blocks of different sizes reuse one graph. A PyTorch module or
TorchScript function gets tensors in and gives tensors back, converted at the boundary.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pyspark import cloudpickle

from ..core.arrays import as_numpy

# digest -> prepared function, kept as long as the (reused) Python worker lives, so a function
# is unpickled (and a tf.function traced) once per worker, not once per task or block.
_LOADED: OrderedDict[str, Callable[[dict], Any]] = OrderedDict()
_MAX_LOADED = 64


def _remember(digest: str, prepared: Callable[[dict], Any]) -> Callable[[dict], Any]:
    _LOADED[digest] = prepared
    while len(_LOADED) > _MAX_LOADED:
        _LOADED.popitem(last=False)
    return prepared


class BlockFunctionError(RuntimeError):
    """A user block function raised, or returned something a block function may not."""


def _is_tf_function(fn: object) -> bool:
    return type(fn).__module__.startswith("tensorflow") and hasattr(fn, "get_concrete_function")


def _is_torch_callable(fn: object) -> bool:
    return type(fn).__module__.startswith("torch")


class _TracedOnce:
    """Calls a ``tf.function`` through concrete functions with an open row dimension."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.concrete: dict[tuple, Any] = {}

    def __call__(self, inputs: dict) -> Any:
        import tensorflow as tf

        if getattr(self.fn, "input_signature", None) is not None:
            return self.fn(inputs)
        key = tuple((name, value.dtype.str, value.shape[1:]) for name, value in inputs.items())
        if key not in self.concrete:
            spec = {
                name: tf.TensorSpec([None, *value.shape[1:]], tf.as_dtype(value.dtype) if value.dtype != object else tf.string)
                for name, value in inputs.items()
            }
            self.concrete[key] = self.fn.get_concrete_function(spec)
        return self.concrete[key](inputs)


class _TorchCall:
    """Runs a torch module or TorchScript function on tensors, without autograd."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def __call__(self, inputs: dict) -> Any:
        import torch

        with warnings.catch_warnings():  # blocks are read-only Arrow memory; we never write to them
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            tensors = {
                name: torch.from_numpy(np.ascontiguousarray(value)) if value.dtype != object else value
                for name, value in inputs.items()
            }
        with torch.no_grad():
            return self.fn(tensors)


def _prepare(fn: Any) -> Callable[[dict], Any]:
    if _is_tf_function(fn):
        return _TracedOnce(fn)
    if _is_torch_callable(fn):
        return _TorchCall(fn)
    return fn


def function_name(fn: object) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return name or type(fn).__name__


@dataclass(frozen=True)
class BlockFunction:
    """A user function shipped with its plan; each worker prepares it once, keyed by content.

    The function travels inside the plan that Spark pickles, so Spark also ships the broadcast
    variables it uses; the digest lets a reused worker keep one prepared copy across tasks.
    """

    fn: Callable = field(repr=False)
    digest: str
    name: str
    operation: str

    @classmethod
    def wrap(cls, fn: Callable, operation: str) -> BlockFunction:
        if not callable(fn):
            raise TypeError(f"{operation} needs a function as its first argument. Received: {fn!r}")
        payload = cloudpickle.dumps(fn)
        digest = hashlib.sha256(payload).hexdigest()
        if _is_tf_function(fn):
            # Tracing makes a tf.function unpicklable: the driver traces a copy of its own.
            _remember(digest, _prepare(cloudpickle.loads(payload)))
        return cls(fn, digest, function_name(fn), operation)

    def load(self) -> Callable[[dict], Any]:
        prepared = _LOADED.get(self.digest)
        if prepared is None:
            prepared = _remember(self.digest, _prepare(self.fn))
        return prepared

    def fail(self, error: BaseException, where: str) -> BlockFunctionError:
        return BlockFunctionError(
            f"{self.operation}: function {self.name!r} raised {type(error).__name__}: {error} "
            f"(on {where})"
        )

    def call(self, *arguments: Any, where: str) -> dict[str, np.ndarray]:
        """Call the function; return its dict output as NumPy arrays."""
        try:
            result = self.load()(*arguments)
        except BlockFunctionError:
            raise
        except Exception as error:
            raise self.fail(error, where) from error
        if not isinstance(result, Mapping):
            raise BlockFunctionError(
                f"{self.operation}: function {self.name!r} must return a dict of column name -> "
                f"array. It returned {type(result).__name__} (on {where})."
            )
        return {str(name): as_numpy(value) for name, value in result.items()}
