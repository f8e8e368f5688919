"""Private copies of a user's block function, so that running it on the driver never changes
what the executors receive.

The driver calls a block function to infer the output columns (and to finish reductions).
Calling it may leave state behind that cannot be pickled: a ``tf.function`` it reaches keeps the
graphs it traced (``cannot pickle 'FuncGraph' object``), a cache may fill with an open session.
So the driver calls a copy, made from the same bytes as the digest, and the function Spark
ships stays as the user gave it. A ``tf.function`` that was already traced is pickled as a fresh,
untraced one with the same options; broadcast variables are shared, not copied.
"""

from __future__ import annotations

import hashlib
import io
import pickle
from dataclasses import dataclass
from typing import Any

from pyspark import cloudpickle

try:
    from pyspark.core.broadcast import Broadcast as _Broadcast
except ImportError:  # the Spark Connect-only client has no broadcast variables
    _Broadcast = None


def is_tf_function(fn: object) -> bool:
    """A ``tf.function`` (a polymorphic TensorFlow function, traced on first call)."""
    return type(fn).__module__.startswith("tensorflow") and hasattr(fn, "get_concrete_function")


def untraced_tf_function(python_function: Any, options: dict[str, Any]) -> Any:
    """A new ``tf.function`` of ``python_function``: what a traced one unpickles to."""
    import tensorflow as tf

    return tf.function(python_function, **options)


def _tf_function_options(fn: Any) -> dict[str, Any]:
    # tf.function keeps these only as private attributes; read them where they exist.
    options = {"input_signature": fn.input_signature}
    for option, attribute in (
        ("autograph", "_autograph"),
        ("jit_compile", "_jit_compile"),
        ("reduce_retracing", "_reduce_retracing"),
        ("experimental_autograph_options", "_experimental_autograph_options"),
    ):
        if hasattr(fn, attribute):
            options[option] = getattr(fn, attribute)
    return options


class _Pickler(cloudpickle.Pickler):
    """cloudpickle, with broadcast variables kept by reference and tf.functions untraced."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.shared: dict[tuple[str, int], Any] = {}
        self.had_traces = False

    def persistent_id(self, obj: Any) -> tuple[str, int] | None:
        if _Broadcast is not None and isinstance(obj, _Broadcast):
            # A broadcast variable cannot be unpickled on the driver; its id is part of the digest.
            handle = getattr(obj, "_jbroadcast", None)
            key = ("broadcast", int(handle.id()) if handle is not None else id(obj))
            self.shared[key] = obj
            return key
        return None

    def reducer_override(self, obj: Any) -> Any:
        if is_tf_function(obj) and hasattr(obj, "python_function"):
            if obj.experimental_get_tracing_count():
                self.had_traces = True
            return untraced_tf_function, (obj.python_function, _tf_function_options(obj))
        return super().reducer_override(obj)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, shared: dict[tuple[str, int], Any]) -> None:
        super().__init__(file)
        self.shared = shared

    def persistent_load(self, key: tuple[str, int]) -> Any:
        return self.shared[tuple(key)]


@dataclass(frozen=True)
class Snapshot:
    """A function pickled once: its bytes, their digest, and what a copy needs."""

    payload: bytes
    digest: str
    shared: dict
    had_traces: bool

    @classmethod
    def of(cls, fn: Any, salt: str = "") -> Snapshot:
        """Pickle ``fn``; ``salt`` separates digests of one function prepared in different ways."""
        with io.BytesIO() as file:
            pickler = _Pickler(file)
            pickler.dump(fn)
            payload = file.getvalue()
        digest = hashlib.sha256(payload + salt.encode()).hexdigest()
        return cls(payload, digest, pickler.shared, pickler.had_traces)

    def copy(self) -> Any:
        """A new, independent copy of the function (broadcast variables shared)."""
        with io.BytesIO(self.payload) as file:
            return _Unpickler(file, self.shared).load()
