"""A model as shipped to executors: where it is, which framework, loaded once per worker."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
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
        from ..session import is_connect

        shipped = _shipped_copy(self.source, self.digest)
        if is_connect(spark):  # no SparkContext: the file goes as a session artifact
            key = (spark.session_id, shipped)
            add = functools.partial(spark.addArtifacts, shipped, file=True)
            if os.path.isdir(shipped):
                raise ValueError(
                    f"A model folder ({self.source}) cannot be sent through Spark Connect, which ships "
                    "single files. Expected a one-file model (.onnx, .keras, .pt, .pt2). Export the "
                    "model to one file, or use a classic session (deepframes.session(master=...))."
                )
        else:
            context = spark.sparkContext
            key = (context.applicationId, shipped)
            add = functools.partial(context.addFile, shipped, recursive=os.path.isdir(shipped))
        if key not in _SHIPPED:
            add()
            _SHIPPED.add(key)
        return ModelSpec(self.source, self.framework, self.digest, os.path.basename(shipped))

    def _local_source(self) -> str | Callable:
        if callable(self.source) or not self.shipped_name:
            return self.source
        from pyspark import SparkFiles

        # The shipped copy is the file the digest was taken of; the driver's path may be absent
        # on this machine, or hold something else.
        shipped = SparkFiles.get(self.shipped_name)
        return shipped if os.path.exists(shipped) else self.source

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
    """A hard link (else a copy) of the model named by its digest, so two models called
    model.onnx never collide, and executors fetching it later get these bytes even when the
    user's file was moved or rewritten meanwhile."""
    import tempfile

    folder = os.path.join(tempfile.gettempdir(), "deepframes-models")
    os.makedirs(folder, exist_ok=True)
    target = os.path.join(folder, f"{digest[:16]}-{os.path.basename(path.rstrip('/'))}")
    if os.path.islink(target):  # left by an older version, which linked by name
        os.unlink(target)
    if not os.path.exists(target):
        temporary = f"{target}.{os.getpid()}"
        if os.path.isdir(path):
            shutil.copytree(path, temporary, copy_function=_link_or_copy)
        else:
            _link_or_copy(path, temporary)
        try:
            os.replace(temporary, target)
        except OSError:  # another process put the same digest there first
            shutil.rmtree(temporary, ignore_errors=True)
    return target


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(source, target)
