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


def equivalence_frame(spark, num_partitions: int = 3):
    """20 global batches of 32 rows (8 features, 3 classes) in a few partitions of unequal size."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(GLOBAL_BATCH * STEPS, 8)).astype(np.float32)
    y = rng.integers(0, 3, GLOBAL_BATCH * STEPS)
    rows = [(row.tolist(), int(label)) for row, label in zip(x, y)]
    return spark.createDataFrame(spark.sparkContext.parallelize(rows, num_partitions),
                                 "features array<float>, label long")


def equivalence_params(framework: str, num_slots: int) -> dict:
    """One epoch of 20 steps, plain SGD, no shuffling, same seed (so same initial weights)."""
    if framework == "keras":
        model, optimizer = equivalence_keras_model, {"class_name": "SGD", "config": {"learning_rate": 0.1}}
    else:
        model, optimizer = equivalence_torch_model, "sgd"
    return {"model": model, "optimizer": optimizer, "learningRate": 0.1, "epochs": 1, "batchSize": GLOBAL_BATCH,
            "shuffle": False, "seed": 3, "numSlots": num_slots}


def fitted_weights(fitted) -> list[np.ndarray]:
    """The trained weights in a fitted KerasModel's or TorchModel's model file."""
    path = fitted.getOrDefault(fitted.model)
    if fitted.getOrDefault(fitted.framework) == "keras":
        import keras

        return [np.asarray(value) for value in keras.saving.load_model(path, compile=False).get_weights()]
    import torch

    if path.endswith(".pt2"):
        return [value.detach().numpy() for value in torch.export.load(path).state_dict.values()]
    return [value.detach().numpy() for value in torch.jit.load(path).state_dict().values()]


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


def pets_torch_cnn():
    """A small PyTorch CNN over 32x32 RGB photos (0-255, NCHW), 3 breeds."""
    import torch

    return torch.nn.Sequential(
        torch.nn.BatchNorm2d(3),
        torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, stride=2), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 3),
    )
