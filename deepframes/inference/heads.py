"""Fitted MLlib classifiers as NumPy functions of features: class scores for a batch of rows.

A head turns the features an ``ImageFeaturizer`` writes into one score per class, exactly as the
MLlib model would (tested against its ``transform``), so a fitted pipeline runs in one Python
batch with its network: in SQL, in the web service, in ``predict`` and in the study's models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``(rows, classes)`` scores."""
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _sigmoid(values: np.ndarray) -> np.ndarray:
    # exp overflows past 709; beyond +-500 the sigmoid is 0 or 1 in float64 anyway.
    return 1.0 / (1.0 + np.exp(-np.clip(values, -500.0, 500.0)))


def _rows(features: np.ndarray) -> np.ndarray:
    return np.asarray(features, dtype=np.float64).reshape(len(features), -1)


@dataclass(frozen=True)
class LinearHead:
    """A linear classifier: ``margins = features @ coefficients.T + intercepts``.

    ``probabilistic`` heads (logistic regression) score with the softmax of the margins (the
    sigmoid for a binary model); a linear SVM scores with its margins (``-m, m`` for two classes),
    which rank the classes but are no probabilities.

    >>> head = LinearHead(np.array([[1.0, -1.0]]), np.array([0.0]), probabilistic=True)
    >>> head.scores(np.array([[2.0, 2.0], [3.0, 1.0]])).round(3).tolist()
    [[0.5, 0.5], [0.119, 0.881]]
    """

    coefficients: np.ndarray  # (classes, features), or (1, features) for a binary model
    intercepts: np.ndarray
    probabilistic: bool

    def margins(self, features: np.ndarray) -> np.ndarray:
        return _rows(features) @ self.coefficients.T + self.intercepts

    def scores(self, features: np.ndarray) -> np.ndarray:
        margins = self.margins(features)
        if margins.shape[1] == 1:  # binary: one margin for class 1
            if self.probabilistic:
                positive = _sigmoid(margins[:, 0])
                return np.stack([1.0 - positive, positive], axis=1)
            return np.concatenate([-margins, margins], axis=1)
        return softmax(margins) if self.probabilistic else margins


@dataclass(frozen=True)
class MLPHead:
    """MLlib's multilayer perceptron: sigmoid hidden layers, a softmax output layer.

    ``layers`` holds ``(weights, bias)`` per layer, ``weights`` shaped ``(outputs, inputs)``.
    """

    layers: tuple[tuple[np.ndarray, np.ndarray], ...]
    probabilistic: bool = True

    @classmethod
    def from_flat(cls, sizes: list[int], flat: np.ndarray) -> MLPHead:
        """MLlib's flat weight vector: per layer, a column-major ``(outputs, inputs)`` matrix
        followed by the bias."""
        layers, offset = [], 0
        for inputs, outputs in zip(sizes[:-1], sizes[1:]):
            weights = flat[offset:offset + inputs * outputs].reshape(inputs, outputs).T
            offset += inputs * outputs
            layers.append((weights, flat[offset:offset + outputs]))
            offset += outputs
        return cls(tuple(layers))

    def scores(self, features: np.ndarray) -> np.ndarray:
        values = _rows(features)
        for index, (weights, bias) in enumerate(self.layers):
            values = values @ weights.T + bias
            values = softmax(values) if index == len(self.layers) - 1 else _sigmoid(values)
        return values


Head = LinearHead | MLPHead


@dataclass(frozen=True)
class Classifier:
    """A head and the names of its classes: features in, labels out. Picklable, needs no Spark
    (the study saves its best models as these).

    >>> model = Classifier(LinearHead(np.array([[1.0]]), np.array([-1.0]), probabilistic=False), ("cat", "dog"))
    >>> model.predict(np.array([[0.0], [3.0]])).tolist()
    ['cat', 'dog']
    """

    head: Head
    labels: tuple[str, ...]

    def scores(self, features: np.ndarray) -> np.ndarray:
        return self.head.scores(features)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.labels, dtype=object)[self.scores(features).argmax(axis=1)]


__all__ = ["Classifier", "Head", "LinearHead", "MLPHead", "softmax"]
