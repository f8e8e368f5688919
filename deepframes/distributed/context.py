"""What a rank knows about itself: the ``ctx`` handed to a training function."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .shard import DataFrameShard


@dataclass(frozen=True)
class RankContext:
    """The rank's place in the run; passed as ``ctx`` when ``fn``'s first parameter is ``ctx``.

    The rendezvous environment is already set when ``fn`` starts: ``TF_CONFIG`` for
    ``tf.distribute.MultiWorkerMirroredStrategy``; ``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``,
    ``WORLD_SIZE`` and ``LOCAL_RANK`` for ``torch.distributed``; ``CUDA_VISIBLE_DEVICES``.

    Attributes
    ----------
    rank, world_size, local_rank : int
        This rank, the number of ranks, and this rank's index among the ranks on its host.
    attempt : int
        0 on the first attempt, then 1, 2, ... when ``max_retries`` resubmits the run.
    run_id : str
        Unique per ``Distributor.run`` call (the same for all its attempts).
    checkpoint_dir : str
        A folder every attempt of this run sees; save there to resume after a retry.
    master_addr, master_port : str, int
        torch.distributed's rendezvous (rank 0's host and a port reserved for it).
    tf_config : dict
        The ``TF_CONFIG`` value of this rank.
    jax_coordinator_address : str
        ``host:port`` for ``jax.distributed.initialize(ctx.jax_coordinator_address,
        ctx.world_size, ctx.rank)``.
    gpus : tuple of str
        The GPU addresses Spark gave this rank (as listed in ``CUDA_VISIBLE_DEVICES``).

    Examples
    --------
    >>> ctx = RankContext(rank=1, world_size=2, local_rank=1, attempt=0, run_id="r",
    ...                   checkpoint_dir="/tmp", master_addr="127.0.0.1", master_port=29500,
    ...                   tf_config={"cluster": {"worker": ["h:1", "h:2"]},
    ...                              "task": {"type": "worker", "index": 1}})
    >>> ctx.is_chief, ctx.tf_config["task"]["index"]
    (False, 1)
    """

    rank: int
    world_size: int
    local_rank: int
    attempt: int
    run_id: str
    checkpoint_dir: str
    master_addr: str
    master_port: int
    tf_config: dict[str, Any] = field(default_factory=dict)
    jax_coordinator_address: str = ""
    gpus: tuple[str, ...] = ()

    @property
    def is_chief(self) -> bool:
        """True on rank 0, the rank whose value ``run`` returns by default."""
        return self.rank == 0

    @property
    def cluster_spec(self) -> Any:
        """The run's ``tf.train.ClusterSpec`` (imports TensorFlow)."""
        import tensorflow as tf

        return tf.train.ClusterSpec(self.tf_config["cluster"])

    def shard(self, data: Any) -> DataFrameShard:
        """This rank's slice of a DataFrame that was passed to ``Distributor.run``.

        A DataFrame given to ``run`` (``run(fn, df)`` or ``run(fn, df=df)``) reaches ``fn`` as its
        rank's :class:`DataFrameShard`, read on the executor; ``ctx.shard`` returns it, and says
        what to do when handed anything else.
        """
        if isinstance(data, DataFrameShard):
            return data.require_bound()
        raise TypeError(
            "ctx.shard() takes a DataFrame that was passed to Distributor.run (it arrives in fn as "
            f"this rank's DataFrameShard); received {type(data).__name__}. Pass the DataFrame "
            "as an argument: distributor.run(fn, df) and call ctx.shard(df) inside fn."
        )

    def environment(self) -> dict[str, str]:
        """The environment variables of the rendezvous, as set before ``fn`` starts."""
        return {
            "RANK": str(self.rank),
            "WORLD_SIZE": str(self.world_size),
            "LOCAL_RANK": str(self.local_rank),
            "MASTER_ADDR": self.master_addr,
            "MASTER_PORT": str(self.master_port),
            "TF_CONFIG": json.dumps(self.tf_config),
            "JAX_COORDINATOR_ADDRESS": self.jax_coordinator_address,
            "JAX_NUM_PROCESSES": str(self.world_size),
            "JAX_PROCESS_ID": str(self.rank),
            "CUDA_VISIBLE_DEVICES": ",".join(self.gpus),
        }
