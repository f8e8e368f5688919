"""``Distributor``: run a training function on N barrier tasks (or N local processes), together."""

from __future__ import annotations

import inspect
import logging
import os
import pickle
import tempfile
import uuid
from collections.abc import Callable
from typing import Any

from .errors import RankFailedError
from .task import RunConfig

logger = logging.getLogger(__name__)

_RETURN_RANKS = ("first", "all")
_MAX_RESULT_BYTES = 256 * 1024 * 1024


# Ports are reserved by binding them and released just before the rank's framework binds them;
# another process can take one in between, and then the whole run is resubmitted once.
_PORT_RETRIES = 1
# How long a retry waits for the slots of a lost executor to come back (a cluster manager
# starts a replacement within seconds to a minute).
_REPLACEMENT_WAIT_S = 90.0


def port_taken(error: RankFailedError) -> bool:
    """Whether a rank failed because an address it was to listen on was in use (EADDRINUSE)."""
    text = f"{error} {getattr(error, 'remote_traceback', '') or ''}".lower()
    return "address already in use" in text or "eaddrinuse" in text


class Distributor:
    """Runs ``fn`` once per rank on ``num_slots`` Spark barrier tasks that start together.

    Before ``fn`` starts, each rank's environment holds the rendezvous: ``TF_CONFIG`` for
    ``tf.distribute.MultiWorkerMirroredStrategy``; ``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK`` for ``torch.distributed``; JAX's coordinator address; and
    ``CUDA_VISIBLE_DEVICES``. Each rank runs in a fresh Python process; its stdout, stderr and logging
    stream to the driver tagged ``[rank N]``.

    Parameters
    ----------
    num_slots : int
        Number of ranks (barrier tasks, or local processes with ``local_mode``).
    local_mode : bool
        Run the ranks as processes on the driver machine instead of on the executors.
    use_gpu : bool
        Give each rank the GPUs Spark assigned to its task (``spark.task.resource.gpu.amount``);
        without it, ranks see no GPU (``CUDA_VISIBLE_DEVICES=""``).
    gpus_per_slot : int
        GPUs each rank uses (the first ones of its task's).
    timeout : float, optional
        Seconds an attempt may take; past it the job is cancelled and the ranks are killed.
    max_retries : int
        Resubmit the whole run this many times after a failure; ``ctx.attempt`` counts attempts.
    return_ranks : {"first", "all"}
        Return rank 0's value, or a list of every rank's value in rank order.
    checkpoint_dir : str, optional
        ``ctx.checkpoint_dir``; defaults to a temporary folder on the driver, removed when ``run``
        returns (it serves retries within the run) and seen only by ranks on the driver's
        machine. On a real cluster pass shared storage (a mounted or object-store path).
    gpu_resource : str
        Spark's name for the GPU resource.
    shard_by : str, optional
        An integer column of the DataFrame given to ``run`` that names each row's rank
        (0 to ``num_slots - 1``): rank r's shard holds exactly the rows whose value is r (the
        column itself is left out). By default rows are dealt round-robin.

    Notes
    -----
    On a cluster with ``spark.ssl.enabled=true`` a run on the executors is refused, as
    spark-tensorflow-distributor refused it: the ranks' traffic is not encrypted. Set
    ``spark.deepframes.distributor.ignoreSsl=true`` to run anyway (a warning is logged).

    Examples
    --------
    >>> def add(ctx, x):
    ...     return ctx.world_size + x
    >>> Distributor(2, local_mode=True).run(add, 40)
    42

    On a cluster, with torch (``fn`` gets ``ctx`` as its first argument when it names it so):

    >>> def train(ctx):  # doctest: +SKIP
    ...     import torch, torch.distributed as dist
    ...     dist.init_process_group("gloo")  # MASTER_ADDR, RANK, ... are already set
    ...     total = torch.tensor([ctx.rank + 1.0])
    ...     dist.all_reduce(total)
    ...     return total.item()
    >>> Distributor(2).run(train)  # doctest: +SKIP
    3.0
    """

    # The Spark setting that allows runs on executors of a cluster with spark.ssl.enabled, and
    # the name messages give the runner (the compat runners keep their originals' setting).
    _ignore_ssl_key = "spark.deepframes.distributor.ignoreSsl"
    _runner_name = "Distributor"

    def __init__(
        self,
        num_slots: int,
        *,
        local_mode: bool = False,
        use_gpu: bool = False,
        gpus_per_slot: int = 1,
        timeout: float | None = None,
        max_retries: int = 0,
        return_ranks: str = "first",
        checkpoint_dir: str | None = None,
        gpu_resource: str = "gpu",
        shard_by: str | None = None,
    ) -> None:
        self.num_slots = num_slots
        self.local_mode = local_mode
        self.use_gpu = use_gpu
        self.gpus_per_slot = gpus_per_slot
        self.timeout = timeout
        self.max_retries = max_retries
        self.return_ranks = return_ranks
        self.checkpoint_dir = checkpoint_dir
        self.gpu_resource = gpu_resource
        self.shard_by = shard_by

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` (or ``fn(ctx, *args, **kwargs)``) on every rank.

        A DataFrame among the arguments reaches each rank as its own :class:`DataFrameShard`
        (``ctx.shard(df)``), read on the executors.

        Returns
        -------
        Rank 0's return value, or the list of all ranks' values with ``return_ranks="all"``.

        Raises
        ------
        RankFailedError
            When a rank raised, died or the run passed ``timeout`` (after ``max_retries``); names the
            rank that failed first with its exception type and traceback.
        ValueError
            When the cluster cannot run ``num_slots`` ranks at once (raised before submitting).
        """
        from .shard import split_dataframe_arguments

        self._validate(fn)
        args, kwargs, df = split_dataframe_arguments(args, kwargs)
        payload = _pickle_call(fn, args, kwargs)
        spark = self._session(df)
        run_id = uuid.uuid4().hex[:12]
        with tempfile.TemporaryDirectory(prefix=f"deepframes-{run_id}-") as scratch:
            checkpoint_dir = self.checkpoint_dir or os.path.join(scratch, "checkpoints")
            os.makedirs(checkpoint_dir, exist_ok=True)
            base = RunConfig(
                run_id=run_id,
                attempt=0,
                world_size=self.num_slots,
                payload=payload,
                wants_ctx=_wants_context(fn),
                checkpoint_dir=checkpoint_dir,
                channel=None,
                use_gpu=self.use_gpu,
                gpus_per_slot=self.gpus_per_slot,
                gpu_resource=self.gpu_resource,
                return_all=self.return_ranks == "all",
                max_result_bytes=_MAX_RESULT_BYTES,
                has_shard=df is not None,
            )
            if self.local_mode:
                launch = self._local_launcher(spark, df, scratch)
            else:
                launch = self._cluster_launcher(spark, df)
            values = self._with_retries(launch, base)
        decoded = {rank: pickle.loads(value) for rank, value in values.items()}
        if self.return_ranks == "all":
            return [decoded.get(rank) for rank in range(self.num_slots)]
        return decoded.get(0)

    def _with_retries(
        self, launch: Callable[[RunConfig], dict[int, bytes]], base: RunConfig
    ) -> dict[int, bytes]:
        """Run attempts until one succeeds: ``max_retries`` resubmissions after failures, plus
        one for a rendezvous port another process took between its reservation and its use."""
        import dataclasses

        attempt, failures, port_retries = 0, 0, 0
        while True:
            try:
                return launch(dataclasses.replace(base, attempt=attempt))
            except RankFailedError as error:
                if port_taken(error) and port_retries < _PORT_RETRIES:
                    port_retries += 1
                    reason = "a rendezvous port was taken by another process"
                elif failures < self.max_retries:
                    failures += 1
                    reason = f"rank {error.rank}, {error.error_type}"
                else:
                    raise
                logger.warning("Attempt %d failed (%s); resubmitting the run.", attempt + 1, reason)
                attempt += 1

    def _cluster_launcher(
        self, spark: Any, df: Any
    ) -> Callable[[RunConfig], dict[int, bytes]]:
        from . import preflight
        from .cluster import run_attempt
        from .shard import partitioned_by_rank

        preflight.check_encryption(spark, self._runner_name, self._ignore_ssl_key)
        preflight.check_dynamic_allocation(spark)
        if self.use_gpu:
            preflight.check_gpus(spark, self.gpu_resource, self.gpus_per_slot)
        preflight.check_slots(spark, self.num_slots)
        if df is not None:
            frame = partitioned_by_rank(df, self.num_slots, self.shard_by)
        else:
            frame = spark.range(0, self.num_slots, 1, self.num_slots)

        def launch(config: RunConfig) -> dict[int, bytes]:
            if config.attempt:
                # Tasks of the failed attempt may still be ending, or a lost executor being
                # replaced; Spark would otherwise retry the new barrier job's slot check every 15 s.
                preflight.check_slots(spark, self.num_slots, patience=_REPLACEMENT_WAIT_S)
            return run_attempt(spark, frame, config, self.timeout)

        return launch

    def _local_launcher(
        self, spark: Any, df: Any, scratch: str
    ) -> Callable[[RunConfig], dict[int, bytes]]:
        from .local import local_gpus, run_local_attempt, write_local_shards

        gpus = (
            local_gpus(spark, self.gpu_resource, self.num_slots * self.gpus_per_slot)
            if self.use_gpu
            else []
        )
        shards = None
        if df is not None:
            shards = write_local_shards(df, self.num_slots, scratch, self.shard_by)
        return lambda config: run_local_attempt(config, shards, gpus, self.timeout)

    def _session(self, df: Any) -> Any:
        from ..session import is_connect, running_session, session

        spark = df.sparkSession if df is not None else running_session()
        if spark is not None and is_connect(spark) and not self.local_mode:
            raise ValueError(
                "Distributor runs its ranks as barrier tasks, which need a classic SparkSession; received "
                "a Spark Connect session. Run the training from a classic session "
                "(deepframes.session(master=...) or spark-submit), or with local_mode=True on this machine."
            )
        if df is not None or self.local_mode:
            return spark
        return spark or session()

    def _validate(self, fn: Callable[..., Any]) -> None:
        if (
            not isinstance(self.num_slots, int)
            or isinstance(self.num_slots, bool)
            or self.num_slots < 1
        ):
            raise ValueError(
                f"num_slots must be a positive integer. Received: num_slots={self.num_slots!r}"
            )
        if not isinstance(self.gpus_per_slot, int) or self.gpus_per_slot < 1:
            raise ValueError(
                f"gpus_per_slot must be a positive integer. Received: gpus_per_slot={self.gpus_per_slot!r}"
            )
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ValueError(
                f"max_retries must be an integer >= 0. Received: max_retries={self.max_retries!r}"
            )
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(
                f"timeout must be a positive number of seconds or None. Received: timeout={self.timeout!r}"
            )
        if self.return_ranks not in _RETURN_RANKS:
            raise ValueError(
                f"return_ranks must be one of {_RETURN_RANKS}. Received: return_ranks={self.return_ranks!r}"
            )
        if not callable(fn):
            raise TypeError(
                f"Distributor.run needs a function to run on each rank. Received: {type(fn).__name__}"
            )


def _wants_context(fn: Callable[..., Any]) -> bool:
    """True when ``fn``'s first parameter is named ``ctx``/``context`` or annotated RankContext."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    if not parameters or parameters[0].kind not in (
        parameters[0].POSITIONAL_ONLY,
        parameters[0].POSITIONAL_OR_KEYWORD,
    ):
        return False
    first = parameters[0]
    annotation = (
        first.annotation
        if isinstance(first.annotation, str)
        else getattr(first.annotation, "__name__", "")
    )
    return first.name in ("ctx", "context") or annotation.endswith("RankContext")


def _pickle_call(fn: Callable[..., Any], args: tuple, kwargs: dict) -> bytes:
    from pyspark import cloudpickle

    try:
        return cloudpickle.dumps((fn, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:
        raise TypeError(
            f"Distributor.run could not pickle {getattr(fn, '__name__', fn)!r} with its arguments to send it "
            f"to the ranks: {error}. Create unpicklable objects (models, sessions, locks) inside fn, and "
            "pass DataFrames as arguments rather than capturing them."
        ) from error
