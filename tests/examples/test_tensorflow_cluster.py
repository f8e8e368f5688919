"""TensorFlow's own cluster API on the Distributor: every rank starts a ``tf.distribute.Server``
from ``ctx.cluster_spec``; rank 0 places the two halves of a mean over slices of unequal size on
``/job:worker/task:0`` and ``/job:worker/task:1`` and combines them, weighted by size."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from deepframes import Distributor

pytestmark = pytest.mark.slow
VALUES = np.random.default_rng(5).normal(size=1001)
SPLIT = 137  # slices of 137 and 864 values


def distributed_mean(ctx, values, split):
    import tensorflow as tf

    server = tf.distribute.Server(ctx.cluster_spec, job_name="worker", task_index=ctx.rank)
    done = os.path.join(ctx.checkpoint_dir, "mean-done")
    if ctx.rank != 0:
        # This worker serves rank 0's ops until rank 0 says it has its result.
        while not os.path.exists(done):
            time.sleep(0.05)
        return None
    graph = tf.Graph()
    with graph.as_default():
        means, sizes = [], []
        for task, part in enumerate((values[:split], values[split:])):
            with tf.device(f"/job:worker/task:{task}"):
                tensor = tf.constant(part, tf.float64)
                means.append(tf.reduce_mean(tensor))
                sizes.append(tf.cast(tf.size(tensor), tf.float64))
        with tf.device("/job:worker/task:0"):
            total = tf.add_n(sizes)
            mean = tf.add_n([m * (s / total) for m, s in zip(means, sizes)])
    with tf.compat.v1.Session(server.target, graph=graph) as session:
        devices = {op.device for op in graph.get_operations() if op.type == "Mean"}
        result = session.run(mean)
    with open(done, "w"):
        pass
    return float(result), sorted(devices)


def _check(result):
    mean, devices = result
    assert devices == ["/job:worker/task:0", "/job:worker/task:1"]
    assert mean == pytest.approx(float(np.mean(VALUES)), abs=1e-12)
    # the unweighted mean of the two halves' means is not the answer
    assert abs(mean - (VALUES[:SPLIT].mean() + VALUES[SPLIT:].mean()) / 2) > 1e-6


def test_weighted_mean_on_two_tensorflow_servers_local(spark):
    _check(Distributor(2).run(distributed_mean, VALUES, SPLIT))


@pytest.mark.cluster
def test_weighted_mean_on_two_tensorflow_servers_local_cluster(cluster_spark):
    _check(Distributor(2).run(distributed_mean, VALUES, SPLIT))
