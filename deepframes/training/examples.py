"""Tiny data and models for the training docstrings and tests (importable on executors)."""

from __future__ import annotations


def two_blobs(spark, num_rows: int = 200, seed: int = 0):
    """A DataFrame of two separable classes: ``features`` (array<float>, 4 values) and ``label``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, num_rows)
    features = rng.normal(size=(num_rows, 4)) + labels[:, None] * 3.0
    rows = [(row.astype(float).tolist(), int(label)) for row, label in zip(features, labels)]
    return spark.createDataFrame(rows, "features array<float>, label long")


def small_mlp(num_inputs: int = 4, num_classes: int = 2, hidden: int = 16):
    """A Keras MLP ending in softmax."""
    import keras

    return keras.Sequential([
        keras.Input((num_inputs,)),
        keras.layers.Dense(hidden, activation="relu"),
        keras.layers.Dense(num_classes, activation="softmax"),
    ])


def small_torch_mlp(num_inputs: int = 4, num_classes: int = 2, hidden: int = 16):
    """A PyTorch MLP returning logits."""
    import torch

    return torch.nn.Sequential(torch.nn.Linear(num_inputs, hidden), torch.nn.ReLU(),
                               torch.nn.Linear(hidden, num_classes))
