"""PyTorch training on one rank: DistributedDataParallel (gloo on CPU, nccl on GPU) across slots.

DDP averages the gradients of the ranks' local batches during ``backward``, so with equal local
batch sizes every rank applies the gradient of the global batch's mean loss to identical weights.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from typing import Any

import numpy as np

from .data import RankData, epoch_batches, local_batch_size, rank_data
from .loop import EpochHook, EpochSums, TrainConfig, run_epochs, summary

_EXPORTING = threading.Lock()

logger = logging.getLogger(__name__)

LOSSES = ("cross_entropy", "nll_loss")
OPTIMIZERS = {"adam": "Adam", "sgd": "SGD", "adamw": "AdamW", "rmsprop": "RMSprop"}


def build_module(config: TrainConfig) -> Any:
    import torch
    from pyspark import cloudpickle

    torch.manual_seed(config.seed)
    return cloudpickle.loads(config.model)()


def loss_function(loss: Any) -> Any:
    """A loss name (``cross_entropy``, ``nll_loss``) or a pickled callable ``(outputs, labels)``."""
    import torch.nn.functional as functional

    if isinstance(loss, bytes):
        from pyspark import cloudpickle

        return cloudpickle.loads(loss)
    return getattr(functional, loss)


def make_optimizer(optimizer: Any, parameters: Any, learning_rate: float | None) -> Any:
    import torch

    if isinstance(optimizer, bytes):
        from pyspark import cloudpickle

        instance = cloudpickle.loads(optimizer)(parameters)
        if learning_rate is not None:
            for group in instance.param_groups:
                group["lr"] = learning_rate
        return instance
    cls = getattr(torch.optim, OPTIMIZERS[optimizer.lower()])
    return cls(parameters, **({} if learning_rate is None else {"lr": learning_rate}))


class TorchTrainer:
    """Trains ``config``'s module on this rank's rows; DDP when ``world_size > 1``."""

    def __init__(self, config: TrainConfig, data: RankData) -> None:
        import torch
        import torch.distributed as dist

        self.config, self.data = config, data
        self.distributed = config.world_size > 1
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if self.distributed and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.module = build_module(config).to(self.device)
        self.model = (torch.nn.parallel.DistributedDataParallel(self.module) if self.distributed else self.module)
        self.loss = loss_function(config.loss)
        self.optimizer = make_optimizer(config.optimizer, self.model.parameters(), config.learning_rate)
        self.local_batch = local_batch_size(config.batch_size, config.world_size, "TorchEstimator")
        self.rank = dist.get_rank() if self.distributed else 0
        slots = np.zeros(config.world_size)
        slots[self.rank] = len(data.y)
        self.usable_rows = int(self.allreduce(slots).min())

    def allreduce(self, values: np.ndarray) -> np.ndarray:
        """Sum a small vector over the ranks."""
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(np.asarray(values, dtype=np.float64), device=self.device)
        if self.distributed:
            dist.all_reduce(tensor)
        return tensor.cpu().numpy()

    def _tensors(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        import torch

        return torch.from_numpy(np.ascontiguousarray(x)).to(self.device), torch.from_numpy(y).to(self.device)

    def _record(self, sums: EpochSums, loss: Any, outputs: Any, y: Any) -> None:
        rows = int(y.shape[0])
        sums.add("loss", float(loss.detach()), rows)
        if self.config.metrics:
            sums.add("accuracy", float((outputs.detach().argmax(dim=1) == y).float().mean()), rows)

    def train_epoch(self, epoch: int) -> EpochSums:
        self.model.train()
        sums = EpochSums()
        for rows in epoch_batches(len(self.data.y), self.usable_rows, self.local_batch, epoch,
                                  self.config.seed, self.config.shuffle):
            x, y = self._tensors(self.data.x[rows], self.data.y[rows])
            self.optimizer.zero_grad()
            outputs = self.model(x)
            loss = self.loss(outputs, y)
            loss.backward()  # DDP averages the gradients across ranks here
            self.optimizer.step()
            self._record(sums, loss, outputs, y)
        return sums

    def validate(self) -> EpochSums:
        import torch

        self.module.eval()
        sums = EpochSums()
        with torch.no_grad():
            for start in range(0, len(self.data.y_validation), self.local_batch):
                x, y = self._tensors(self.data.x_validation[start:start + self.local_batch],
                                     self.data.y_validation[start:start + self.local_batch])
                outputs = self.module(x)
                self._record(sums, self.loss(outputs, y), outputs, y)
        return sums

    def fit(self, on_epoch: EpochHook | None = None) -> dict[str, list[float]]:
        has_validation = self.allreduce(np.array([len(self.data.y_validation)]))[0] > 0
        return run_epochs(self.config, self.train_epoch, self.validate if has_validation else None,
                          self.allreduce, on_epoch)

    def model_file(self) -> tuple[bytes, str]:
        """The trained module, with a softmax after it, and its file name: a ``torch.export``
        program (``model.pt2``: the input shape recorded, the batch size free), or TorchScript
        traced on two rows (``model.pt``) when the module cannot be exported."""
        import torch

        self.module.eval()
        predictor = _predictor(self.module.cpu()).eval()
        example = torch.from_numpy(np.ascontiguousarray(self.data.x[:2]))
        buffer = io.BytesIO()
        # One export at a time in a process: torch.export's tracing state is global, and fits
        # in driver threads (fitMultiple, CrossValidator's parallelism) finish together.
        with _EXPORTING:
            try:
                batch = torch.export.Dim("batch")
                program = torch.export.export(predictor, (example,), dynamic_shapes=({0: batch},))
                torch.export.save(program, buffer)
                return buffer.getvalue(), "model.pt2"
            except Exception as error:  # noqa: BLE001 - any export failure: TorchScript still serves
                logger.warning("torch.export could not export the trained module (%s: %s); saving it as "
                               "TorchScript, which records no input shape.", type(error).__name__,
                               str(error).splitlines()[0][:200])
            buffer = io.BytesIO()
            torch.jit.save(torch.jit.trace(predictor, example), buffer)
            return buffer.getvalue(), "model.pt"


def _predictor(module: Any) -> Any:
    """``module`` taking features of any float type (vectors arrive as float64) and returning
    class probabilities."""
    import torch

    class Predictor(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module = module

        def forward(self, features: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.module(features.float()), dim=1)

    return Predictor()


def fit_torch(config: TrainConfig, data: RankData, on_epoch: EpochHook | None = None) -> dict:
    """Train on ``data``; returns history, summary and, on rank 0, the TorchScript bytes."""
    trainer = TorchTrainer(config, data)
    started = time.perf_counter()  # the training loop's time, as for Keras
    history = trainer.fit(on_epoch)
    seconds = time.perf_counter() - started
    total_rows = int(trainer.allreduce(np.array([len(data.y)]))[0])
    result = {"history": history, "summary": summary(history, config.world_size, seconds, total_rows)}
    if trainer.rank == 0:
        result["model"], result["model_file_name"] = trainer.model_file()
    return result


def train_torch_rank(ctx: Any, shard: Any, config: TrainConfig) -> dict:
    """A ``Distributor`` rank: read this rank's shard on the executor, then train."""
    data = rank_data(ctx.shard(shard).to_arrow(), config.feature)
    try:
        return fit_torch(config, data)
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


__all__ = ["LOSSES", "OPTIMIZERS", "TorchTrainer", "fit_torch", "train_torch_rank"]
