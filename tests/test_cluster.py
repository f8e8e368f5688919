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


def _block_results(spark, column_values):
    from tests.blocks.conftest import sliced_frame
    from tests.blocks.test_reduce import weighted_mean

    ten = spark.createDataFrame([(float(x),) for x in range(10)], "x double").repartition(3)
    added = sorted(row.z for row in deepframes.map_blocks(lambda b: {"z": b["x"] + 3}, ten).collect())
    sliced = sliced_frame(spark, column_values)
    mean = deepframes.reduce_blocks(weighted_mean, sliced, block_size=50)
    keyed = sliced.withColumn("key", (sliced.x > 20).cast("string"))
    groups = sorted(tuple(row) for row in deepframes.aggregate(weighted_mean, keyed, by="key").collect())
    return added, float(mean["x"]), float(mean["w"]), groups


def test_blocks_local_cluster_matches_local(spark_sessions):
    import numpy as np

    column_values = np.random.default_rng(7).lognormal(3.0, 2.0, size=1000)
    local = _block_results(spark_sessions.get(LOCAL_MASTER), column_values)
    cluster = _block_results(spark_sessions.get(CLUSTER_MASTER), column_values)
    assert local[0] == [x + 3.0 for x in range(10)]
    assert abs(local[1] - np.mean(column_values)) <= 1e-12 * np.mean(column_values)
    assert cluster[0] == local[0]
    assert cluster[1:3] == pytest.approx(local[1:3], rel=1e-12, abs=0)
    assert [g[0] for g in cluster[3]] == [g[0] for g in local[3]]
    for cluster_group, local_group in zip(cluster[3], local[3]):
        assert cluster_group[1:] == pytest.approx(local_group[1:], rel=1e-12)


def test_engines_local_cluster_matches_local(spark_sessions, tmp_path_factory):
    import numpy as np

    from tests.inference.conftest import TOY_FORMATS, reference
    from tests.inference.test_engines import transform_with_each_engine

    folder = tmp_path_factory.mktemp("cluster_toys")
    toy_models = {name: maker(folder) for name, (maker, _, _) in TOY_FORMATS.items()}
    toy_inputs = np.random.default_rng(3).normal(size=(50, 4)).astype(np.float32)
    local = transform_with_each_engine(spark_sessions.get(LOCAL_MASTER), toy_models, toy_inputs)
    cluster = transform_with_each_engine(spark_sessions.get(CLUSTER_MASTER), toy_models, toy_inputs)
    for name in TOY_FORMATS:
        np.testing.assert_allclose(cluster[name], reference(toy_inputs), atol=1e-5, err_msg=name)
        np.testing.assert_allclose(cluster[name], local[name], atol=1e-6, err_msg=name)
