"""A model as shipped to executors: where it is, which framework, loaded once per worker."""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..core.files import digest_named_copy, ship_file, shipped_path
from ..engines import MODEL_FILES, Engine, TensorInfo, detect_framework, load_engine

# digest -> engine, for as long as the (reused) Python worker lives.
_ENGINES: OrderedDict[str, Engine] = OrderedDict()
_MAX_ENGINES = 4


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

    def for_outputs(self, outputs: Sequence[str | None]) -> ModelSpec:
        """This model cut down to what ``outputs`` need: an ONNX file's graph without the nodes
        only other outputs use (made once, on the driver); the model itself otherwise."""
        if self.framework != "onnx" or callable(self.source) or self.shipped_name or not outputs or None in outputs:
            return self
        from ..engines.onnx import cut_graph

        part = cut_graph(self.source, [str(name) for name in outputs], digest=self.digest)
        return self if part == self.source else ModelSpec.from_file(part, "onnx")

    def ship(self, spark) -> ModelSpec:
        """Send the model file to every executor (``SparkContext.addFile``, or a Connect
        artifact) for real clusters."""
        if callable(self.source) or self.shipped_name:
            return self
        shipped = digest_named_copy(self.source, self.digest)
        what = f"A model folder ({self.source}; a one-file model: .onnx, .keras, .pt, .pt2)"
        return ModelSpec(self.source, self.framework, self.digest, ship_file(spark, shipped, what))

    def _local_source(self) -> str | Callable:
        if callable(self.source) or not self.shipped_name:
            return self.source
        # The shipped copy is the file the digest was taken of; the driver's path may be absent
        # on this machine, or hold something else.
        return shipped_path(self.shipped_name, self.source)

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
