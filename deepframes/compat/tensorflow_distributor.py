"""spark-tensorflow-distributor's ``MirroredStrategyRunner``, running on deepframes' Distributor."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ..distributed import Distributor


KERAS3_FIT_ERROR = (
    "model.fit failed under MultiWorkerMirroredStrategy because tf.keras is Keras 3 here, whose fit "
    "cannot run under that strategy (keras-team/keras#20585: it tries to convert a PerReplica batch to "
    "a tensor). Fix: install tf_keras beside TensorFlow without a second TensorFlow wheel "
    "(pip install --no-deps 'tf-keras==<your TensorFlow version>'); the runner then gives the workers "
    "TF_USE_LEGACY_KERAS=1 so that tf.keras is Keras 2. Or train with deepframes.KerasEstimator, "
    "which runs Keras 3 data-parallel with its own step."
)


def prefer_legacy_keras() -> None:
    """Make ``tf.keras`` the Keras 2 of ``tf_keras`` in this (fresh) worker when it is installed
    and TensorFlow is not imported yet: Keras 2's ``fit`` runs under MultiWorkerMirroredStrategy."""
    import importlib.util
    import os
    import sys

    if "tensorflow" not in sys.modules and importlib.util.find_spec("tf_keras") is not None:
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


class _RunnerDistributor(Distributor):
    """The Distributor as the runner uses it: with the original's setting to ignore TLS."""

    _ignore_ssl_key = "tensorflow.spark.distributor.ignoreSsl"
    _runner_name = "MirroredStrategyRunner"


def run_tensorflow_program(
    train_fn: Callable[..., Any], use_custom_strategy: bool, kwargs: dict[str, Any]
) -> Any:
    """Call ``train_fn(**kwargs)`` on a rank, inside a MultiWorkerMirroredStrategy scope unless
    the function builds its own strategy."""
    prefer_legacy_keras()
    try:
        if use_custom_strategy:
            return train_fn(**kwargs)
        import tensorflow as tf

        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        with strategy.scope():
            return train_fn(**kwargs)
    except ValueError as error:
        if "PerReplica" in str(error)[:2000]:
            raise RuntimeError(KERAS3_FIT_ERROR) from None  # not the whole batch's values
        raise


class MirroredStrategyRunner:
    """Runs a TensorFlow training function on ``num_slots`` Spark tasks (or GPUs), as
    spark-tensorflow-distributor's class of the same name did, with the same arguments.

    What differs, for the better: too few slots fail in seconds instead of after Spark's 40 x 15 s
    retries; each worker's output streams to the driver tagged ``[rank N]``; a failing worker's
    traceback is raised on the driver; each worker runs in a fresh process. As before, training
    on executors of a cluster with ``spark.ssl.enabled=true`` is refused unless
    ``tensorflow.spark.distributor.ignoreSsl=true`` (gradients travel unencrypted between
    workers), and ``runner.sc`` is the SparkContext it runs on. Keras 3's
    ``model.fit`` fails under ``MultiWorkerMirroredStrategy`` (TF 2.21 / Keras 3.15): write the loop
    with ``strategy.run`` (see the README's "Distributed training"), with
    ``use_custom_strategy=True`` and your own strategy.

    Parameters
    ----------
    num_slots : int
        GPUs in total (``use_gpu``) or Spark tasks (CPU) taking part; must be positive.
    local_mode : bool
        Run on the driver (one process, using ``num_slots`` of the driver's GPUs).
    use_gpu : bool
        Train on GPUs scheduled by Spark under ``gpu_resource_name`` (the default, as before).
    gpu_resource_name : str
        Spark's name for the GPU resource (``spark.task.resource.<name>.amount``).
    use_custom_strategy : bool
        If False, ``train_fn`` runs inside a ``MultiWorkerMirroredStrategy`` scope made for it;
        if True, ``train_fn`` makes its own strategy.

    Examples
    --------
    >>> runner = MirroredStrategyRunner(num_slots=2, use_gpu=False)  # doctest: +SKIP
    >>> runner.run(train, epochs=2)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        num_slots: int,
        local_mode: bool = False,
        use_gpu: bool = True,
        gpu_resource_name: str = "gpu",
        use_custom_strategy: bool = False,
    ) -> None:
        if not isinstance(num_slots, int) or num_slots <= 0:
            raise ValueError(
                f"num_slots must be a positive integer. Received: num_slots={num_slots!r}"
            )
        self._num_slots = num_slots
        self._local_mode = local_mode
        self._use_gpu = use_gpu
        self._gpu_resource_name = gpu_resource_name
        self._use_custom_strategy = use_custom_strategy

    @property
    def sc(self) -> Any:
        """The SparkContext the runner uses (the running session's; one is started if none runs),
        as the original's ``runner.sc``."""
        from ..session import running_session, session

        return (running_session() or session()).sparkContext

    def get_num_tasks(self) -> int:
        """The number of Spark tasks used: ``num_slots``, or for GPUs ``num_slots`` divided by the
        GPUs per task (``spark.task.resource.<name>.amount``), rounded up."""
        if not self._use_gpu:
            return self._num_slots
        return math.ceil(self._num_slots / self._gpus_per_task())

    def _gpus_per_task(self) -> int:
        from ..distributed import preflight
        from ..session import running_session, session

        spark = running_session() or session()
        key = f"spark.task.resource.{self._gpu_resource_name}.amount"
        amount = preflight.task_gpu_amount(spark, self._gpu_resource_name)
        if amount < 1:
            raise ValueError(
                f"use_gpu=True needs {key} of 1 or more (Spark GPU-aware scheduling); received "
                f"{amount:g}. Set {key} and a GPU discovery script, or pass use_gpu=False."
            )
        return int(amount)

    def run(self, train_fn: Callable[..., Any], **kwargs: Any) -> Any:
        """Run ``train_fn(**kwargs)`` on every worker; returns the chief's (rank 0's) return value."""
        if self._local_mode:
            if not self._use_gpu and self._num_slots > 1:
                raise ValueError(
                    f"Cannot run more than 1 CPU worker in local mode; received num_slots={self._num_slots}. "
                    "Use num_slots=1, or local_mode=False to run on the executors."
                )
            distributor = _RunnerDistributor(
                1,
                local_mode=True,
                use_gpu=self._use_gpu,
                gpus_per_slot=self._num_slots,
                gpu_resource=self._gpu_resource_name,
            )
        else:
            num_tasks = self.get_num_tasks()
            distributor = _RunnerDistributor(
                num_tasks,
                use_gpu=self._use_gpu,
                gpus_per_slot=max(1, self._num_slots // num_tasks),
                gpu_resource=self._gpu_resource_name,
            )
        return distributor.run(
            run_tensorflow_program, train_fn, self._use_custom_strategy, kwargs
        )
