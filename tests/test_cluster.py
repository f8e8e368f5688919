"""Real separate executors (local-cluster[2,1,1024]) read exactly what local[2] reads."""

from __future__ import annotations

import hashlib

import pytest

import deepframes
from tests.conftest import CLUSTER_MASTER, LOCAL_MASTER

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def _fingerprint(spark, folders):
    df = deepframes.read_images([str(f) for f in folders], label="filename", size=(48, 48), spark=spark)
    return sorted(
        (
            row.path,
            row.label,
            row.error,
            None if row.image is None else (row.image.height, row.image.width, row.image.nChannels,
                                            hashlib.sha256(row.image.data).hexdigest()),
        )
        for row in df.collect()
    )


def test_read_images_local_cluster_matches_local(spark_sessions, pets_images, odd_images):
    folders = [pets_images, odd_images]
    local_rows = _fingerprint(spark_sessions.get(LOCAL_MASTER), folders)
    cluster = spark_sessions.get(CLUSTER_MASTER)
    cluster_rows = _fingerprint(cluster, folders)
    # The driver's block manager is listed too; the other two are the executor JVMs.
    assert cluster.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1 == 2
    assert len(local_rows) == 607
    assert cluster_rows == local_rows
