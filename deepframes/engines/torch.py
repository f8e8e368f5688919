"""PyTorch engine: TorchScript files, ``torch.export`` programs, or a factory plus a state dict."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .base import Engine, Placement, TensorInfo, require

# torch.export.load keeps its deserializer in a module global and refuses a second load while one
# runs: two fits of a CrossValidator (parallelism=2) load their models at once on the driver.
_EXPORT_LOAD_LOCK = threading.Lock()


def _forward_names(module) -> list[str]:
    schema = getattr(getattr(module, "forward", None), "schema", None)
    if schema is not None:  # TorchScript: the compiled signature, after `self`
        return [argument.name for argument in schema.arguments[1:]] or ["input"]
    try:
        parameters = inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return ["input"]
    return [name for name, p in parameters.items() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)] or ["input"]


def _torch_dtype(dtype) -> str:
    return str(dtype).replace("torch.", "")


def _sizes(value) -> tuple[int, ...]:
    return tuple(size if isinstance(size, int) else -1 for size in value.shape)  # SymInt: dynamic


def _exported_signature(program, output_names: Sequence[str] | None) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """Inputs and outputs of a ``torch.export`` program, with the shapes and dtypes it recorded."""
    user_inputs = set(program.graph_signature.user_inputs)
    inputs, outputs = [], []
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user_inputs:
            value = node.meta["val"]
            inputs.append(TensorInfo(node.name, _sizes(value), _torch_dtype(value.dtype)))
        elif node.op == "output":
            values = [argument.meta["val"] for argument in node.args[0]]
            names = list(output_names or (["output"] if len(values) == 1 else [f"output_{i}" for i in range(len(values))]))
            outputs = [TensorInfo(name, _sizes(value), _torch_dtype(value.dtype)) for name, value in zip(names, values)]
    return inputs, outputs


class TorchEngine(Engine):
    """Runs a PyTorch model without autograd: a ``.pt2`` ``torch.export`` program (the way to
    save a model for deepframes: it records its input and output shapes), a ``.pt`` TorchScript
    file (deprecated by PyTorch), or ``factory()`` returning an ``nn.Module`` (weights from
    ``state_dict`` if given).

    Input names are the ``forward`` parameters unless ``input_names`` says otherwise; a model
    returning a dict names its outputs, others are ``output`` (or ``output_0``, ``output_1``...).
    TorchScript files and factories cannot tell their shapes before they run: those are unknown
    (None) in ``inputs`` and ``outputs``.

    Examples
    --------
    >>> import torch
    >>> class Scale(torch.nn.Module):
    ...     def forward(self, features):
    ...         return features * 2
    >>> batch = torch.export.Dim("batch")
    >>> program = torch.export.export(Scale(), (torch.ones(2, 4),), dynamic_shapes={"features": {0: batch}})
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "scale.pt2")
    >>> torch.export.save(program, path)
    >>> engine = TorchEngine(path)
    >>> [info.describe() for info in engine.inputs + engine.outputs]
    ['features: float32[?, 4]', 'output: float32[?, 4]']
    """

    framework = "torch"

    def __init__(
        self,
        source: str | Callable[[], object],
        placement: Placement = Placement(),
        state_dict: str | None = None,
        input_names: Sequence[str] | None = None,
        output_names: Sequence[str] | None = None,
    ) -> None:
        torch = require("torch", "torch", "A PyTorch model")
        if placement.in_task:  # process-wide: leave the driver's own setting alone
            torch.set_num_threads(placement.threads)
        self.device = torch.device(f"cuda:{placement.gpu}" if placement.gpu is not None and torch.cuda.is_available() else "cpu")
        signature = None
        if callable(source):
            module = source()
            if state_dict:
                module.load_state_dict(torch.load(state_dict, map_location="cpu", weights_only=True))
        elif str(source).endswith(".pt2"):
            with _EXPORT_LOAD_LOCK:
                program = torch.export.load(source)
            signature = _exported_signature(program, output_names)
            module = program.module()
        else:
            module = torch.jit.load(source, map_location="cpu")
        try:
            module.eval()
        except (AttributeError, NotImplementedError):
            pass  # torch.export programs are already in inference form
        self.module = module.to(self.device) if hasattr(module, "to") else module
        self._output_names = list(output_names) if output_names else None
        if signature is not None:
            self._inputs, self._outputs = signature
            if input_names:
                self._inputs = [TensorInfo(name, info.shape, info.dtype) for name, info in zip(input_names, self._inputs)]
        else:
            self._inputs = [TensorInfo(name, None, "float32") for name in (input_names or _forward_names(module))]
            self._outputs = [TensorInfo(name, None, "float32") for name in (self._output_names or ["output"])]

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        import torch

        feeds = self.check_feeds(feeds)
        tensors = [torch.from_numpy(np.array(feeds[info.name], dtype=info.dtype if info.shape else None, copy=True)).to(self.device)
                   for info in self._inputs]
        with torch.no_grad():
            result = self.module(*tensors)
        if isinstance(result, Mapping):
            values = {str(name): value for name, value in result.items()}
        elif isinstance(result, (list, tuple)):
            names = self._output_names or [f"output_{i}" for i in range(len(result))]
            values = dict(zip(names, result))
        else:
            values = {(self._output_names or ["output"])[0]: result}
        return {name: value.detach().cpu().numpy() for name, value in values.items()}
