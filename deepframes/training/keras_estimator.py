"""``KerasEstimator``: fit a Keras 3 classifier on a DataFrame, on one slot or data-parallel."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from pyspark import keyword_only

from .._scratch import scratch_folder
from ..core.params import DICT, STRING, Constraint, function, invalid
from .estimator import TrainingEstimator, pickled
from .model import ClassifierModel


class KerasModel(ClassifierModel):
    """A fitted ``KerasEstimator``: a ``ModelTransformer`` over the trained ``.keras`` file."""


def _is_keras_model(value: object) -> bool:
    return any(cls.__module__.startswith("keras") for cls in type(value).__mro__) and hasattr(value, "save")


def _saved_model_path(model: object) -> str:
    """A Keras model object saved into a folder of the stage's own (Params hold plain values)."""
    path = os.path.join(scratch_folder(), "model.keras")
    model.save(path)
    return path


class KerasEstimator(TrainingEstimator):
    """Train a Keras 3 classifier on DataFrame columns; ``fit`` returns a :class:`KerasModel`.

    The rows are read on the executors (never collected to the driver), except that one slot on a
    ``local[N]`` master trains in the driver process, on this machine either way. With
    ``numSlots=1`` the model trains in one Spark task; with ``numSlots=N`` it trains data-parallel on N barrier tasks:
    every step, each rank computes gradients on its ``batchSize / N`` rows, the gradients are
    averaged across ranks, and each rank applies the same update to its identical copy of the
    weights (``MultiWorkerMirroredStrategy`` with a step built here, since Keras 3's ``model.fit``
    does not run under that strategy).

    Parameters
    ----------
    model : keras.Model, str or callable
        A model (saved by the stage into its own folder), a ``.keras`` file, or a function
        returning a new model. Its output layer gives class probabilities (softmax).
    featuresCol : str
        An ML vector, an array column (of any recorded shape), or an image column (``read_images``
        struct or encoded files), resized to the model's input.
    labelCol : str
        Class indices 0..classes-1.
    predictionCol, probabilityCol : str
        Output columns of the fitted model.
    loss : str
        A Keras loss name (default ``sparse_categorical_crossentropy``).
    optimizer : str or dict
        A Keras optimizer name or config dict (``{"class_name": "SGD", "config": {...}}``).
    learningRate : float, optional
    metrics : list of str
        Per-epoch metrics (default ``["accuracy"]``).
    epochs, batchSize : int
        Passes over the data; rows per step over all slots together (a multiple of ``numSlots``):
        global batch k is rows ``k * batchSize`` onwards in the DataFrame's order, and slot r
        trains on its r-th ``batchSize / numSlots`` rows.
    validationFraction : float
        Rows held out (seeded) to report ``val_*`` metrics and drive early stopping.
    earlyStoppingPatience : int
        Stop after this many epochs without a better validation loss (0: never).
    shuffle : bool
        Reshuffle every epoch (each slot its own rows). Without it, ``numSlots=N`` takes exactly
        the global batches ``numSlots=1`` takes, and ends with the same weights.
    numSlots : int
        Spark tasks training together. One slot on a ``local[N]`` master trains in the driver
        process (the executors are threads of its JVM there; a rank process would add its start
        and the framework's import); elsewhere each slot is a barrier task.
    seed : int
        Initial weights, validation split and batch order.

    Raises
    ------
    deepframes.core.params.InvalidParameterError
        When built or when a Param is set (``setX``, ``copy``, a ``CrossValidator`` grid): a value
        outside what the Param accepts (``KerasEstimator.parameter_constraints()``). A loss or
        optimizer name Keras does not know is refused by ``fit`` before training.

    Examples
    --------
    >>> import deepframes, keras, numpy as np
    >>> from deepframes.training.examples import two_blobs, small_mlp
    >>> spark = deepframes.session("local[2]")
    >>> df = two_blobs(spark, 200)
    >>> estimator = deepframes.KerasEstimator(model=small_mlp, epochs=3, batchSize=20,
    ...                                       learningRate=0.05)
    >>> fitted = estimator.fit(df)
    >>> fitted.transform(df).select("prediction").distinct().count()
    2
    >>> sorted(fitted.history_)
    ['accuracy', 'loss']

    The estimator saves with its model factory (or model file), alone or in a ``Pipeline`` or a
    fitted ``CrossValidatorModel``:

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> estimator.write().overwrite().save(folder + "/estimator")
    >>> KerasEstimator.load(folder + "/estimator").getModel() is small_mlp
    True
    """

    framework = "keras"
    model_class = KerasModel
    model_file_name = "model.keras"
    _parameter_constraints = {
        "model": Constraint("a .keras file, a Keras model or a function returning one",
                            lambda value: callable(value) or STRING.accepts(value)),
        "loss": (Constraint("a Keras loss name", STRING.accepts), function("a loss function")),
        "optimizer": (Constraint("a Keras optimizer name", STRING.accepts), Constraint("config dict", DICT.accepts)),
    }

    @keyword_only
    def __init__(self, *, model=None, featuresCol="features", labelCol="label", predictionCol="prediction",
                 probabilityCol="probability", loss="sparse_categorical_crossentropy", optimizer="adam",
                 learningRate=None, metrics=None, epochs=10, batchSize=32, validationFraction=0.0,
                 earlyStoppingPatience=0, shuffle=True, numSlots=1, seed=42):
        super().__init__()
        self._setDefault(loss="sparse_categorical_crossentropy", optimizer="adam", **self._defaults)
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, model=None, featuresCol="features", labelCol="label", predictionCol="prediction",
                  probabilityCol="probability", loss="sparse_categorical_crossentropy", optimizer="adam",
                  learningRate=None, metrics=None, epochs=10, batchSize=32, validationFraction=0.0,
                  earlyStoppingPatience=0, shuffle=True, numSlots=1, seed=42):
        return self._set(**{name: value for name, value in self._input_kwargs.items() if value is not None})

    def _set(self, **kwargs: Any) -> KerasEstimator:
        if _is_keras_model(kwargs.get("model")):  # Params hold plain values: the model goes to a file
            kwargs["model"] = _saved_model_path(kwargs["model"])
        return super()._set(**kwargs)

    def _model_payload(self) -> tuple[bytes, bool]:
        model = self.getOrDefault(self.model)
        if callable(model):
            return pickled(model, "model factory", "KerasEstimator"), True
        if not os.path.isfile(model):
            raise ValueError(
                f"KerasEstimator: the model file {model!r} does not exist. Expected a .keras file, a "
                "Keras model or a function returning one; pass one of those as model=."
            )
        with open(model, "rb") as handle:
            return handle.read(), False

    def _inspect(self, payload, cell_shape):
        from .keras_loop import build_model
        from .loop import TrainConfig

        probe = TrainConfig(model=payload[0], model_is_factory=payload[1], feature=None, loss=None,
                            optimizer=None, learning_rate=None, metrics=(), epochs=1, batch_size=1,
                            shuffle=False, seed=self.getOrDefault(self.seed), patience=0, world_size=1)
        model = build_model(probe)
        self._check_compile_arguments()
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise ValueError(
                f"KerasEstimator trains models with one input and one output; received "
                f"{len(model.inputs)} inputs and {len(model.outputs)} outputs. Wrap the model so that "
                "it takes the features column and returns class probabilities."
            )
        input_shape = tuple(-1 if size is None else int(size) for size in model.inputs[0].shape)
        return input_shape, int(model.outputs[0].shape[-1])

    def _check_compile_arguments(self) -> None:
        """A loss or optimizer name Keras does not know fails here, not on every rank."""
        import keras

        from .keras_loop import make_optimizer

        for name, make in (("loss", keras.losses.get), ("optimizer", lambda value: make_optimizer(value, None))):
            value = self.getOrDefault(name)
            try:
                make(value)
            except (ValueError, TypeError):
                raise invalid("KerasEstimator", name, value, self.parameter_constraints()[name]) from None

    def _local_fit(self) -> Callable:
        from .keras_loop import fit_keras

        return fit_keras

    def _rank_function(self) -> Callable:
        from .keras_loop import train_keras_rank

        return train_keras_rank


__all__ = ["KerasEstimator", "KerasModel"]
