"""A model as shipped to executors: where it is, which framework, loaded once per worker."""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from ..engines import MODEL_FILES, Engine, TensorInfo, detect_framework, load_engine

# digest -> engine, for as long as the (reused) Python worker lives.
_ENGINES: OrderedDict[str, Engine] = OrderedDict()
_MAX_ENGINES = 4
# (application, file) pairs already sent with SparkContext.addFile, which refuses a second time.
_SHIPPED: set[tuple[str, str]] = set()


def file_digest(path: str) -> str:
    """SHA-256 of a model file, or of every file in a model folder (names and contents)."""
    digest = hashlib.sha256()
    paths = [path] if os.path.isfile(path) else sorted(
        os.path.join(root, name) for root, _, names in os.walk(path) for name in names
    )
    for item in paths:
        digest.update(os.path.relpath(item, path).encode())
        with open(item, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelSpec:
    """A model file (or a picklable factory) and its framework; cached on workers by digest."""

    source: str | Callable = field(repr=False)
    framework: str | None
    digest: str
    shipped_name: str | None = None

    @classmethod
    def from_file(cls, path: str, framework: str | None = None) -> ModelSpec:
        if not os.path.exists(path):
            raise FileNotFoundError(f"Model file not found: {path}. Give the path of a {MODEL_FILES}.")
        return cls(os.path.abspath(path), framework or detect_framework(path), file_digest(path))

    @classmethod
    def from_factory(cls, factory: Callable, framework: str, key: str) -> ModelSpec:
        digest = hashlib.sha256(f"{framework}:{key}".encode()).hexdigest()
        return cls(factory, framework, digest)

    def ship(self, spark) -> ModelSpec:
        """Send the model file to every executor (``SparkContext.addFile``) for real clusters."""
        if callable(self.source) or self.shipped_name:
            return self
        shipped = _shipped_copy(self.source, self.digest)
        context = spark.sparkContext
        if (context.applicationId, shipped) not in _SHIPPED:
            context.addFile(shipped, recursive=os.path.isdir(shipped))
            _SHIPPED.add((context.applicationId, shipped))
        return ModelSpec(self.source, self.framework, self.digest, os.path.basename(shipped))

    def _local_source(self) -> str | Callable:
        if callable(self.source) or os.path.exists(self.source) or not self.shipped_name:
            return self.source
        from pyspark import SparkFiles

        return SparkFiles.get(self.shipped_name)

    def load(self) -> Engine:
        """The engine for this model, loaded at most once per Python worker."""
        engine = _ENGINES.get(self.digest)
        if engine is None:
            engine = load_engine(self._local_source(), self.framework)
            _ENGINES[self.digest] = engine
            while len(_ENGINES) > _MAX_ENGINES:
                _ENGINES.popitem(last=False)
        return engine


    def signature(self) -> tuple[list[TensorInfo], list[TensorInfo]]:
        """The model's inputs and outputs (names, shapes, dtypes), for planning on the driver.

        Read without running the model and cached per model for the life of the process: an
        ONNX file's graph is read with the ``onnx`` package when it is installed (no runtime
        session); other models are loaded once (a Keras factory builds its network).
        """
        known = _SIGNATURES.get(self.digest)
        if known is None:
            known = _onnx_signature(self.source) if self.framework == "onnx" and not callable(self.source) else None
            if known is None:
                engine = self.load()
                known = (list(engine.inputs), list(engine.outputs))
            _SIGNATURES[self.digest] = known
        return known


_SIGNATURES: dict[str, tuple[list[TensorInfo], list[TensorInfo]]] = {}


def _onnx_signature(path: str) -> tuple[list[TensorInfo], list[TensorInfo]] | None:
    try:
        import onnx
        from onnx import helper
    except ImportError:
        return None
    graph = onnx.load(path, load_external_data=False).graph
    initializers = {tensor.name for tensor in graph.initializer}

    def info(value) -> TensorInfo:
        tensor = value.type.tensor_type
        shape = tuple(dim.dim_value if dim.HasField("dim_value") else -1 for dim in tensor.shape.dim)
        dtype = helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
        return TensorInfo(value.name, shape, dtype)

    inputs = [info(value) for value in graph.input if value.name not in initializers]
    return inputs, [info(value) for value in graph.output]


def _shipped_copy(path: str, digest: str) -> str:
    """A link to the model named by its digest, so two models called model.onnx never collide."""
    import tempfile

    folder = os.path.join(tempfile.gettempdir(), "deepframes-models")
    os.makedirs(folder, exist_ok=True)
    target = os.path.join(folder, f"{digest[:16]}-{os.path.basename(path.rstrip('/'))}")
    if not os.path.exists(target):  # missing, or a link left dangling by a deleted file
        temporary = f"{target}.{os.getpid()}"
        os.symlink(os.path.abspath(path), temporary)
        os.replace(temporary, target)
    return target
