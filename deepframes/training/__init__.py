"""Training on DataFrames: Keras and PyTorch estimators and a parallel hyperparameter search."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes

_EXPORTS = {
    "KerasEstimator": ".keras_estimator",
    "KerasModel": ".keras_estimator",
    "TorchEstimator": ".torch_estimator",
    "TorchModel": ".torch_estimator",
    "tune": ".tune",
    "TuneResult": ".tune",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .keras_estimator import KerasEstimator as KerasEstimator
    from .keras_estimator import KerasModel as KerasModel
    from .torch_estimator import TorchEstimator as TorchEstimator
    from .torch_estimator import TorchModel as TorchModel
    from .tune import TuneResult as TuneResult
    from .tune import tune as tune

__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
