"""An out-of-distribution test on image features: is a photo like the ones the classifier was
trained on, or should the answer be "not recognised"?

The score is the Mahalanobis distance of a photo's L2-normalised features to the nearest class
mean, with one within-class covariance shrunk towards a multiple of the identity (Ledoit-Wolf, as
there are fewer photos than features). Distances mean little by themselves, so each photo's is
turned into a *typicality*: the share of held-out training photos (scored by cross-validation,
so none is scored by statistics it helped to make) lying at least as far from their nearest
class. A photo whose typicality falls below ``reject_threshold`` is not recognised: with 0.01,
about 1% of photos like the training ones are turned away, and 0 turns the test off.

Measured on SqueezeNet features of the shared pets over 20 random splits (see the README's "Not
recognised", ``bench/not_recognised.py``): 0.01 keeps 99.1% of held-out pets (95.8% at worst;
0.025 keeps 97.5%, 95.0% at worst) and rejects 98.8% of the non-pet photos of
``deepframes.apps.nonpets``: noise, solid colours, digits, heavily blurred pets and nearly all
non-animal photos. The classifier's own top probability does not separate them (cut where 99% of
pets pass, it rejects 13%), and the normalisation matters (without it, noise and digits pass).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

DEFAULT_REJECT_THRESHOLD = 0.01


def unit_rows(features: np.ndarray) -> np.ndarray:
    """``(rows, features)`` scaled to unit L2 length (all-zero rows stay zero)."""
    values = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    return values / np.maximum(np.linalg.norm(values, axis=1, keepdims=True), 1e-12)


def check_reject_threshold(value: float) -> float:
    """``value`` as a float in [0, 1); ValueError otherwise.

    >>> check_reject_threshold(1.5)
    Traceback (most recent call last):
    ...
    ValueError: The reject threshold must be a number in [0, 1): the share of held-out training photos to turn away (0.01 turns away about 1%, 0 none). Got 1.5 instead.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(
            "The reject threshold must be a number in [0, 1): the share of held-out training photos to "
            f"turn away (0.01 turns away about 1%, 0 none). Got {value!r} instead."
        )
    return float(value)


@dataclass(frozen=True)
class NoveltyTest:
    """A fitted out-of-distribution test: features in, recognised or not out. Picklable, NumPy only.

    Parameters
    ----------
    whitening : ndarray, shape (features, features)
        ``W`` with ``W @ W.T`` the inverse of the shrunk within-class covariance: the squared
        Mahalanobis distance of ``x`` to a mean ``m`` is ``|(x - m) @ W|**2``.
    centres : ndarray, shape (classes, features)
        The class means of the unit-length training features, multiplied by ``whitening``.
    labels : tuple of str
        The class of each centre.
    calibration : ndarray
        The held-out (cross-validated) distances of the training photos, sorted.
    reject_threshold : float
        Photos less typical than this are not recognised (see the module's docstring).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> features = np.concatenate([rng.normal(0, 1, (50, 8)) + 5 * np.eye(8)[0],
    ...                            rng.normal(0, 1, (50, 8)) + 5 * np.eye(8)[1]])
    >>> test = fit_novelty_test(features, ["a"] * 50 + ["b"] * 50)
    >>> test.recognised(np.stack([5 * np.eye(8)[0], -5 * np.eye(8)[0]])).tolist()
    [True, False]
    """

    whitening: np.ndarray
    centres: np.ndarray
    labels: tuple[str, ...]
    calibration: np.ndarray
    reject_threshold: float = DEFAULT_REJECT_THRESHOLD

    def distances(self, features: np.ndarray) -> np.ndarray:
        """``(rows, classes)`` squared Mahalanobis distances of each photo to each class mean."""
        whitened = unit_rows(features) @ self.whitening
        return ((whitened[:, np.newaxis, :] - self.centres[np.newaxis]) ** 2).sum(axis=2)

    def typicality(self, features: np.ndarray) -> np.ndarray:
        """Per photo, in (0, 1]: the share of held-out training photos at least as far from their
        nearest class as it is from its own (one more counted above and below, so never 0)."""
        nearest = self.distances(features).min(axis=1) if len(features) else np.zeros(0)
        farther = len(self.calibration) - np.searchsorted(self.calibration, nearest, side="left")
        return (1.0 + farther) / (1.0 + len(self.calibration))

    def recognised(self, features: np.ndarray) -> np.ndarray:
        """Per photo, True when it is typical enough of the training photos to get a class."""
        return self.accepts(self.typicality(features))

    def accepts(self, typicality: np.ndarray) -> np.ndarray:
        """True where a ``typicality`` (from ``typicality``) is high enough to get a class."""
        return np.asarray(typicality) >= self.reject_threshold

    def with_reject_threshold(self, value: float) -> NoveltyTest:
        return replace(self, reject_threshold=check_reject_threshold(value))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted statistics as named arrays (``np.savez``); ``from_arrays`` reads them back."""
        return {"whitening": self.whitening, "centres": self.centres, "calibration": self.calibration,
                "labels": np.asarray(self.labels, dtype=str)}

    @classmethod
    def from_arrays(cls, arrays, reject_threshold: float = DEFAULT_REJECT_THRESHOLD) -> NoveltyTest:
        return cls(np.asarray(arrays["whitening"]), np.asarray(arrays["centres"]),
                   tuple(str(label) for label in arrays["labels"]), np.asarray(arrays["calibration"]),
                   reject_threshold)


def _statistics(unit: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Classes, their means, and the whitening of the shrunk within-class covariance."""
    from sklearn.covariance import ledoit_wolf_shrinkage

    classes, index = np.unique(labels, return_inverse=True)
    means = np.stack([unit[index == k].mean(axis=0) for k in range(len(classes))])
    residuals = unit - means[index]
    covariance = residuals.T @ residuals / len(unit)
    shrinkage = ledoit_wolf_shrinkage(residuals, assume_centered=True)
    scale = np.trace(covariance) / len(covariance)
    shrunk = (1 - shrinkage) * covariance + shrinkage * scale * np.eye(len(covariance))
    eigenvalues, eigenvectors = np.linalg.eigh(shrunk)
    whitening = eigenvectors / np.sqrt(np.maximum(eigenvalues, 1e-12 * max(scale, 1e-300)))
    return classes, means, whitening


def _nearest_distances(unit: np.ndarray, means: np.ndarray, whitening: np.ndarray) -> np.ndarray:
    whitened, centres = unit @ whitening, means @ whitening
    return ((whitened[:, np.newaxis, :] - centres[np.newaxis]) ** 2).sum(axis=2).min(axis=1)


def fit_novelty_test(
    features: np.ndarray,
    labels: Sequence[str],
    *,
    reject_threshold: float = DEFAULT_REJECT_THRESHOLD,
    num_folds: int = 5,
    seed: int = 0,
) -> NoveltyTest:
    """Fit the test on training features and calibrate it by ``num_folds``-fold cross-validation.

    Parameters
    ----------
    features : ndarray, shape (rows, features)
        The featurizer's output for the training photos.
    labels : sequence of str
        Their classes.
    reject_threshold : float
        In [0, 1); see ``NoveltyTest``.
    num_folds : int
        Each fold's photos are scored by statistics fitted on the other folds.
    seed : int
        Assigns photos to folds.

    Raises
    ------
    ValueError
        Fewer than ``2 * num_folds`` photos, labels and features of different lengths, or a bad
        threshold.
    """
    check_reject_threshold(reject_threshold)
    unit = unit_rows(features)
    labels = np.asarray([str(label) for label in labels], dtype=object)
    if len(labels) != len(unit):
        raise ValueError(f"Expected one label per feature row; received {len(labels)} labels for {len(unit)} rows.")
    if not isinstance(num_folds, int) or num_folds < 2 or len(unit) < 2 * num_folds:
        raise ValueError(
            f"The novelty test is calibrated by cross-validation on at least 2 photos per fold; received "
            f"{len(unit)} photos for num_folds={num_folds!r}. Give more photos or fewer folds (at least 2)."
        )
    folds = np.random.default_rng(seed).permutation(len(unit)) % num_folds
    calibration = np.empty(len(unit))
    for fold in range(num_folds):
        held_out = folds == fold
        # A class missing from the other folds leaves its photos far from every mean: a
        # conservative (larger) threshold, never a failure.
        _, means, whitening = _statistics(unit[~held_out], labels[~held_out])
        calibration[held_out] = _nearest_distances(unit[held_out], means, whitening)
    classes, means, whitening = _statistics(unit, labels)
    return NoveltyTest(whitening, means @ whitening, tuple(str(name) for name in classes),
                       np.sort(calibration), reject_threshold)


__all__ = ["DEFAULT_REJECT_THRESHOLD", "NoveltyTest", "check_reject_threshold", "fit_novelty_test", "unit_rows"]
