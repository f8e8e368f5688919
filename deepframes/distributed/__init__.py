"""Distributed training on the Spark cluster: a barrier-mode ``Distributor`` for TF, torch, JAX."""

from __future__ import annotations

from .context import RankContext as RankContext
from .distributor import Distributor as Distributor
from .errors import RankFailedError as RankFailedError
from .shard import DataFrameShard as DataFrameShard

__all__ = ["DataFrameShard", "Distributor", "RankContext", "RankFailedError"]
