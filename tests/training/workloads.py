"""Models and rank functions of the training tests, importable on executors."""

from __future__ import annotations

import numpy as np

GLOBAL_BATCH = 32
STEPS = 20


def pets_keras_mlp():
    import keras

    return keras.Sequential([
        keras.Input((512,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(3, activation="softmax"),
    ])


def pets_torch_mlp():
    import torch

    return torch.nn.Sequential(torch.nn.Linear(512, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3))


def equivalence_keras_model():
    import keras

    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(3, activation="softmax")])


def equivalence_torch_model():
    import torch

    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


def rank_rows(rank: int, world_size: int):
    """This rank's half of each of the 20 global batches, in step order (same data on any world)."""
    from deepframes.training.data import RankData

    rng = np.random.default_rng(0)
    x = rng.normal(size=(GLOBAL_BATCH * STEPS, 8)).astype(np.float32)
    y = rng.integers(0, 3, GLOBAL_BATCH * STEPS)
    local = GLOBAL_BATCH // world_size
    rows = np.concatenate([np.arange(step * GLOBAL_BATCH + rank * local, step * GLOBAL_BATCH + (rank + 1) * local)
                           for step in range(STEPS)])
    return RankData(x[rows], y[rows], x[:0], y[:0])


def equivalence_config(framework: str, world_size: int):
    from pyspark import cloudpickle

    from deepframes.training.loop import TrainConfig

    factory = equivalence_keras_model if framework == "keras" else equivalence_torch_model
    return TrainConfig(
        model=cloudpickle.dumps(factory), model_is_factory=True, feature=None,
        loss="sparse_categorical_crossentropy" if framework == "keras" else "cross_entropy",
        optimizer="sgd" if framework == "torch" else {"class_name": "SGD", "config": {"learning_rate": 0.1}},
        learning_rate=0.1, metrics=("accuracy",), epochs=1, batch_size=GLOBAL_BATCH, shuffle=False, seed=3,
        patience=0, world_size=world_size)


def equivalence_rank(ctx, framework: str, world_size: int):
    """Train 20 steps with the estimators' own trainer; returns the final weights."""
    data = rank_rows(ctx.rank, world_size)
    config = equivalence_config(framework, world_size)
    if framework == "keras":
        from deepframes.training.keras_loop import KerasTrainer

        trainer = KerasTrainer(config, data)
        trainer.fit()
        return [np.asarray(v) for v in trainer.model.trainable_variables]
    from deepframes.training.torch_loop import TorchTrainer

    trainer = TorchTrainer(config, data)
    trainer.fit()
    return [p.detach().cpu().numpy() for p in trainer.module.parameters()]


def broken_torch_mlp():
    raise RuntimeError("this model factory is broken on purpose")


def pets_cnn():
    """A small CNN over 64x64 RGB photos (0-255), 3 breeds."""
    import keras

    return keras.Sequential([
        keras.Input((64, 64, 3)),
        keras.layers.Rescaling(1 / 255.0),
        keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
        keras.layers.Conv2D(32, 3, strides=2, activation="relu"),
        keras.layers.Conv2D(32, 3, strides=2, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(3, activation="softmax"),
    ])
