"""User block functions: shipped once, loaded once per Python worker, errors named.

NumPy functions are called as they are. A ``tf.function`` is traced once per worker with the
row dimension left open, so blocks of different sizes reuse one graph (row functions: every
dimension open, so cells of any shape do). A PyTorch module or TorchScript function gets tensors
in and gives tensors back, converted at the boundary. The driver calls only a private copy of
the function (see :mod:`.pickling`), so what it traces or caches never rides along to executors.
"""

from __future__ import annotations

import sys
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.arrays import as_numpy
from .pickling import Snapshot, is_tf_function

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


def _is_torch_callable(fn: object) -> bool:
    torch = sys.modules.get("torch")  # a torch callable means torch is imported already
    if torch is None:
        return False
    return isinstance(fn, torch.nn.Module) or type(fn).__module__.startswith("torch")


# Operations whose function gets one row's cells (scalars, or arrays of the row's own shape).
_ROW_OPERATIONS = ("map_rows", "reduce_rows")


def _open_shape(value: Any, by_row: bool) -> tuple[int | None, ...]:
    """The traced shape of an input: rows open in a block; every dimension open in a row."""
    if by_row:
        return (None,) * np.ndim(value)
    return (None, *np.shape(value)[1:])


def _tensor_spec(value: Any, by_row: bool) -> Any:
    import tensorflow as tf

    if isinstance(value, (str, bytes)) or getattr(value, "dtype", None) == object:
        dtype = tf.string
    else:
        dtype = tf.as_dtype(np.asarray(value).dtype)
    return tf.TensorSpec(_open_shape(value, by_row), dtype)


class _TracedOnce:
    """Calls a ``tf.function`` through concrete functions with open dimensions, so a worker
    traces it once per input signature, not once per block size (or cell shape)."""

    def __init__(self, fn: Any, by_row: bool) -> None:
        self.fn = fn
        self.by_row = by_row
        self.concrete: dict[tuple, Any] = {}

    def __call__(self, *inputs: dict) -> Any:
        if getattr(self.fn, "input_signature", None) is not None:
            return self.fn(*inputs)
        key = tuple(
            (name, type(value).__name__, str(getattr(value, "dtype", "")), _open_shape(value, self.by_row))
            for part in inputs
            for name, value in part.items()
        )
        if key not in self.concrete:
            specs = [{name: _tensor_spec(value, self.by_row) for name, value in part.items()} for part in inputs]
            self.concrete[key] = self.fn.get_concrete_function(*specs)
        return self.concrete[key](*inputs)


class _TorchCall:
    """Runs a torch module or TorchScript function on tensors, without autograd."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def __call__(self, *inputs: dict) -> Any:
        import torch

        with warnings.catch_warnings():  # blocks are read-only Arrow memory; we never write to them
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            tensors = [
                {name: _as_tensor(torch, value) for name, value in part.items()} for part in inputs
            ]
        with torch.no_grad():
            return self.fn(*tensors)


def _as_tensor(torch: Any, value: Any) -> Any:
    """A numeric array or scalar as a tensor; strings and bytes stay as they are."""
    if isinstance(value, (np.ndarray, np.generic)) and value.dtype != object and value.dtype.kind not in "US":
        # ascontiguousarray would turn a row's scalar cell into a 1-element array
        return torch.from_numpy(np.ascontiguousarray(value) if np.ndim(value) else np.array(value))
    return value


def _prepare(fn: Any, by_row: bool) -> Callable[..., Any]:
    if is_tf_function(fn):
        return _TracedOnce(fn, by_row)
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
    variables it uses; the digest lets a reused worker keep one prepared copy across tasks. The
    driver never calls ``fn`` itself: :meth:`wrap` prepares a private copy for it.
    """

    fn: Callable = field(repr=False)
    digest: str
    name: str
    operation: str

    @property
    def by_row(self) -> bool:
        return self.operation in _ROW_OPERATIONS

    @classmethod
    def wrap(cls, fn: Callable, operation: str) -> BlockFunction:
        if not callable(fn):
            raise TypeError(f"{operation} needs a function as its first argument. Received: {fn!r}")
        by_row = operation in _ROW_OPERATIONS
        try:
            snapshot = Snapshot.of(fn, salt="rows" if by_row else "blocks")
        except Exception as error:
            raise TypeError(
                f"{operation} could not pickle function {function_name(fn)!r} to send it to the "
                f"executors: {type(error).__name__}: {error}. Expected a function whose captured "
                "objects pickle; create sessions, locks and open files inside the function (once, "
                "in a module-level cache) instead of capturing them."
            ) from error
        if snapshot.had_traces:
            # A tf.function traced before (by the caller) cannot be pickled: ship an untraced copy.
            fn = snapshot.copy()
        _remember(snapshot.digest, _prepare(snapshot.copy(), by_row))
        return cls(fn, snapshot.digest, function_name(fn), operation)

    def load(self) -> Callable[..., Any]:
        prepared = _LOADED.get(self.digest)
        if prepared is None:
            prepared = _remember(self.digest, _prepare(self.fn, self.by_row))
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
