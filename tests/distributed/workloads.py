"""Functions the distributed tests run on ranks; a module of its own so executors import it cheaply."""

from __future__ import annotations

import os
import signal
import time

import numpy as np


def rank_info(ctx):
    return {
        "rank": ctx.rank,
        "world_size": ctx.world_size,
        "local_rank": ctx.local_rank,
        "attempt": ctx.attempt,
        "run_id": ctx.run_id,
        "env": {
            key: os.environ.get(key)
            for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TF_CONFIG",
                        "JAX_COORDINATOR_ADDRESS")
        },
        "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "gpus": ctx.gpus,
        "pid": os.getpid(),
    }


def say_hello(ctx):
    import logging

    print(f"hello from rank {ctx.rank}")
    logging.getLogger("workloads").warning("logged by rank %d", ctx.rank)
    return ctx.rank


def raise_on_rank(ctx, failing_rank):
    if ctx.rank == failing_rank:
        raise ValueError(f"boom on rank {ctx.rank}")
    return ctx.rank


def fail_first_attempt(ctx):
    marker = os.path.join(ctx.checkpoint_dir, f"attempt-{ctx.attempt}-rank-{ctx.rank}")
    open(marker, "w").close()
    if ctx.attempt == 0 and ctx.rank == 1:
        raise RuntimeError("first attempt fails on purpose")
    return ctx.attempt


def kill_rank_one(ctx, pid_folder):
    """Rank 1 kills itself with SIGKILL; the others hang (their tasks must be stopped for them)."""
    with open(os.path.join(pid_folder, f"rank-{ctx.rank}.pid"), "w") as sink:
        sink.write(str(os.getpid()))
    if ctx.rank == 1:
        time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(600)


def hang(ctx, pid_folder):
    with open(os.path.join(pid_folder, f"rank-{ctx.rank}.pid"), "w") as sink:
        sink.write(str(os.getpid()))
    time.sleep(600)


def unpicklable_value(ctx):
    return lambda: None


def shard_summary(ctx, df):
    shard = ctx.shard(df)
    arrays = shard.to_numpy()
    batches = list(shard.batches(3))
    loader = shard.as_torch_loader("x", label="y", batch_size=4)
    first_x, first_y = next(iter(loader))
    return {
        "rows": shard.num_rows,
        "ids": sorted(arrays["id"].tolist()),
        "x_shape": arrays["x"].shape,
        "batch_rows": [len(batch["id"]) for batch in batches],
        "loader_shapes": (tuple(first_x.shape), tuple(first_y.shape)),
    }


def torch_ddp_train(ctx, steps=8):
    """A linear regression under DistributedDataParallel (gloo); each rank has its own data."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = DistributedDataParallel(torch.nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(ctx.rank)
    x = torch.randn(64, 4, generator=generator)
    y = x @ torch.tensor([1.0, -2.0, 3.0, 0.5]) + 0.25
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = ((model(x)[:, 0] - y) ** 2).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    weights = [
        parameter.detach().numpy().copy() for parameter in model.module.parameters()
    ]
    dist.destroy_process_group()
    return {"rank": ctx.rank, "losses": losses, "weights": weights}


def keras_mwms_train(ctx=None, steps=6, results_dir=None):
    """A Keras 3 model under MultiWorkerMirroredStrategy with a custom loop (strategy.run).

    Uses the strategy whose scope it runs in (MirroredStrategyRunner's), else makes its own; with
    ``results_dir``, every rank also saves its result there.
    """
    import pickle

    import keras
    import tensorflow as tf

    rank = int(os.environ["RANK"])
    if tf.distribute.has_strategy():
        strategy = tf.distribute.get_strategy()
    else:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        optimizer = keras.optimizers.SGD(learning_rate=0.1)
    rng = np.random.default_rng(rank)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 3.0, 0.5], dtype="float32") + 0.25).astype("float32")
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.OFF
    )
    dataset = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .batch(64)
        .repeat()
        .with_options(options)
    )
    iterator = iter(strategy.experimental_distribute_dataset(dataset))

    def replica_step(features, labels):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(features, training=True)[:, 0] - labels) ** 2)
            scaled = loss / strategy.num_replicas_in_sync
        gradients = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    @tf.function
    def train_step(batch):
        per_replica = strategy.run(replica_step, args=batch)
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)

    losses = [float(train_step(next(iterator))) for _ in range(steps)]
    result = {
        "rank": rank,
        "cluster_workers": ctx.cluster_spec.num_tasks("worker") if ctx else None,
        "losses": losses,
        "weights": [np.array(weight) for weight in model.get_weights()],
    }
    if results_dir:
        with open(os.path.join(results_dir, f"rank-{rank}.pkl"), "wb") as sink:
            pickle.dump(result, sink)
    return result


def assert_trained_identically(results):
    """Every rank ends with the same weights, and the loss falls."""
    assert [result["rank"] for result in results] == list(range(len(results)))
    for result in results[1:]:
        for mine, theirs in zip(result["weights"], results[0]["weights"], strict=True):
            np.testing.assert_array_equal(mine, theirs)
    for result in results:
        assert result["losses"][-1] < 0.5 * result["losses"][0], result["losses"]


def live_processes(pid_folder):
    """The recorded rank processes that still exist (zombies count as gone)."""
    alive = []
    for name in os.listdir(pid_folder):
        with open(os.path.join(pid_folder, name)) as source:
            pid = int(source.read())
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().split(") ", 1)[1].startswith("Z"):
                    continue
            alive.append(pid)
        except FileNotFoundError:
            pass
    return alive


def wait_until_gone(pid_folder, timeout=15.0):
    deadline = time.monotonic() + timeout
    while live_processes(pid_folder) and time.monotonic() < deadline:
        time.sleep(0.2)
    return live_processes(pid_folder)


def raise_on_rank_with_shard(ctx, df, failing_rank):
    """Every rank gets its shard (a shard.arrow in its folder); ``failing_rank`` raises, the others wait."""
    ctx.shard(df).to_numpy()
    if ctx.rank == failing_rank:
        time.sleep(1.0)
        raise ValueError(f"boom on rank {ctx.rank}")
    time.sleep(600)


def checkpointed_steps(ctx, total_steps, marker_dir):
    """Counts steps, checkpointing each (rank 0); on the first attempt both ranks stop half-way and
    wait there (for the test to kill an executor). Resumes from the checkpoint on a retry only: on the
    first attempt rank 0 may have checkpointed before a slower rank 1 starts, which must not skip the
    half-way stop."""
    import json

    path = os.path.join(ctx.checkpoint_dir, "state.json")
    step = json.load(open(path))["step"] if ctx.attempt > 0 and os.path.exists(path) else 0
    resumed_from = step
    while step < total_steps:
        step += 1
        if ctx.rank == 0:
            with open(path + ".tmp", "w") as sink:
                json.dump({"step": step}, sink)
            os.replace(path + ".tmp", path)
        if ctx.attempt == 0 and step == total_steps // 2:
            with open(os.path.join(marker_dir, f"rank-{ctx.rank}.pid"), "w") as sink:
                sink.write(str(os.getpid()))
            time.sleep(600)
    return {"attempt": ctx.attempt, "resumed_from": resumed_from, "step": step}
