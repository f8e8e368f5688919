"""A rank's failure reaches the driver whole even without the log channel: through Spark's own
error, as the pickled failure the rank's task raised, not as text to parse."""

from __future__ import annotations

import pytest

from deepframes.distributed import Distributor, RankFailedError
from deepframes.distributed import cluster
from tests.distributed import workloads


def test_a_rank_error_without_the_log_channel_keeps_its_rank_type_and_traceback(spark, monkeypatch):
    monkeypatch.setattr(cluster, "open_channel", lambda spark, monitor, world_size: None)
    with pytest.raises(RankFailedError, match=r"Rank 1 failed first, with ValueError: boom on rank 1") as info:
        Distributor(2).run(workloads.raise_on_rank, 1)
    assert info.value.rank == 1
    assert info.value.error_type == "ValueError"
    assert 'raise ValueError(f"boom on rank {ctx.rank}")' in info.value.remote_traceback
    assert "deepframes-executor-error:" not in str(info.value)
