"""Data-parallel training on Spark with deepframes.Distributor: PyTorch DDP and TensorFlow
MultiWorkerMirroredStrategy (Keras 3, custom loop), each rank on its own shard of a DataFrame.

    .venv/bin/python examples/distributed_training.py [--master local[2]] [--slots 2]
"""

from __future__ import annotations

import argparse

import numpy as np

import deepframes

TRUE_WEIGHTS = np.array([1.0, -2.0, 3.0, 0.5])


def torch_train(ctx, df, epochs):
    """DistributedDataParallel over gloo; the rendezvous variables are already set."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = DistributedDataParallel(torch.nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    loader = ctx.shard(df).as_torch_loader(
        "features", label="label", batch_size=32, shuffle=True
    )
    for epoch in range(epochs):
        for features, label in loader:
            optimizer.zero_grad()
            loss = ((model(features.float())[:, 0] - label.float()) ** 2).mean()
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch}: loss {loss.item():.4f}")
    weights = model.module.weight.detach().numpy()[0]
    dist.destroy_process_group()
    return weights


def keras_train(ctx, df, epochs, steps_per_epoch=30):
    """MultiWorkerMirroredStrategy with strategy.run: Keras 3's model.fit fails under it."""
    import keras
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        optimizer = keras.optimizers.SGD(learning_rate=0.05)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.OFF
    )
    shard = ctx.shard(df)  # this rank's rows already: no auto-sharding by TensorFlow
    dataset = shard.as_tf_dataset(
        "features", label="label", batch_size=32
    ).with_options(options)

    def replica_step(features, labels):
        with tf.GradientTape() as tape:
            predictions = model(tf.cast(features, "float32"), training=True)[:, 0]
            loss = tf.reduce_mean((predictions - tf.cast(labels, "float32")) ** 2)
            scaled = (
                loss / strategy.num_replicas_in_sync
            )  # gradients are summed over ranks
        gradients = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    @tf.function
    def train_step(batch):
        losses = strategy.run(replica_step, args=batch)
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, losses, axis=None)

    # Every rank must run the same number of steps, whatever its shard's size: repeat, then take.
    batches = iter(strategy.experimental_distribute_dataset(dataset.repeat()))
    for epoch in range(epochs):
        for _ in range(steps_per_epoch):
            loss = train_step(next(batches))
        print(f"epoch {epoch}: loss {float(loss):.4f}")
    return model.get_weights()[0][:, 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--slots", type=int, default=2)
    args = parser.parse_args()
    spark = deepframes.session(args.master)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2_000, 4))
    labels = features @ TRUE_WEIGHTS + rng.normal(scale=0.1, size=2_000)
    df = spark.createDataFrame(
        [
            (row.tolist(), float(label))
            for row, label in zip(features, labels, strict=True)
        ],
        "features array<double>, label double",
    )
    distributor = deepframes.Distributor(args.slots)
    print("torch DDP weights:", np.round(distributor.run(torch_train, df, epochs=3), 2))
    print(
        "keras MWMS weights:", np.round(distributor.run(keras_train, df, epochs=3), 2)
    )
    print("true weights:     ", TRUE_WEIGHTS)


if __name__ == "__main__":
    main()
