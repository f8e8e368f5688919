"""PyTorch engine: TorchScript files, ``torch.export`` programs, or a factory plus a state dict."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .base import Engine, Placement, TensorInfo, require


def _forward_names(module) -> list[str]:
    schema = getattr(getattr(module, "forward", None), "schema", None)
    if schema is not None:  # TorchScript: the compiled signature, after `self`
        return [argument.name for argument in schema.arguments[1:]] or ["input"]
    try:
        parameters = inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return ["input"]
    return [name for name, p in parameters.items() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)] or ["input"]


class TorchEngine(Engine):
    """Runs a PyTorch model without autograd: ``.pt`` TorchScript, ``.pt2`` ``torch.export``
    program, or ``factory()`` returning an ``nn.Module`` (weights from ``state_dict`` if given).

    Input names are the ``forward`` parameters unless ``input_names`` says otherwise; a model
    returning a dict names its outputs, others are ``output`` (or ``output_0``, ``output_1``...).
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
        if callable(source):
            module = source()
            if state_dict:
                module.load_state_dict(torch.load(state_dict, map_location="cpu", weights_only=True))
        elif str(source).endswith(".pt2"):
            module = torch.export.load(source).module()
        else:
            module = torch.jit.load(source, map_location="cpu")
        try:
            module.eval()
        except (AttributeError, NotImplementedError):
            pass  # torch.export programs are already in inference form
        self.module = module.to(self.device) if hasattr(module, "to") else module
        names = list(input_names or _forward_names(module))
        self._inputs = [TensorInfo(name, (-1,), "float32") for name in names]
        self._output_names = list(output_names) if output_names else None
        self._outputs = [TensorInfo(name, (-1,), "float32") for name in (self._output_names or ["output"])]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        feeds = self.check_feeds(feeds)
        tensors = [torch.from_numpy(np.array(feeds[info.name], copy=True)).to(self.device) for info in self._inputs]
        with torch.no_grad():
            result = self.module(*tensors)
        if isinstance(result, Mapping):
            values = {str(name): value for name, value in result.items()}
        elif isinstance(result, (list, tuple)):
            names = self._output_names or [f"output_{i}" for i in range(len(result))]
            values = dict(zip(names, result))
        else:
            values = {(self._output_names or ["output"])[0]: result}
        outputs = {name: value.detach().cpu().numpy() for name, value in values.items()}
        self._outputs = [TensorInfo(name, (-1, *value.shape[1:]), value.dtype.name) for name, value in outputs.items()]
        return outputs
