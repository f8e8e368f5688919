"""``TorchEstimator``: fit a PyTorch classifier on a DataFrame, on one slot or with DDP."""

from __future__ import annotations

from collections.abc import Callable

from pyspark import keyword_only
from pyspark.ml.param import Param, Params, TypeConverters

from ..core.params import POSITIVE_INTS, Constraint, function, one_of
from .estimator import TrainingEstimator, pickled
from .model import ClassifierModel
from .torch_loop import LOSSES, OPTIMIZERS


class TorchModel(ClassifierModel):
    """A fitted ``TorchEstimator``: a ``ModelTransformer`` over the trained module followed by a
    softmax, saved with ``torch.export`` (``.pt2``, which records the input shape, so image columns
    are resized to it), or as TorchScript (``.pt``) when the module cannot be exported."""


class TorchEstimator(TrainingEstimator):
    """Train a ``torch.nn.Module`` classifier on DataFrame columns; ``fit`` returns a
    :class:`TorchModel`.

    The rows are read on the executors (one slot on a ``local[N]`` master trains in the driver
    process, on this machine either way). With ``numSlots=N`` the module trains with
    ``DistributedDataParallel`` on N barrier tasks (gloo on CPU, nccl on GPU): each rank takes
    ``batchSize / N`` rows per step and DDP averages the gradients, so the weights stay identical.

    Parameters
    ----------
    model : callable
        A function returning a new ``nn.Module`` that maps a batch of features to class logits.
    loss : str or callable
        ``"cross_entropy"`` (default), ``"nll_loss"``, or ``loss(outputs, labels)``.
    optimizer : str or callable
        ``"adam"``, ``"sgd"``, ``"adamw"``, ``"rmsprop"``, or ``factory(parameters)`` returning a
        ``torch.optim.Optimizer``.
    featuresCol : str
        An ML vector, an array column, or an image column (``read_images`` struct or encoded
        files), decoded and resized to ``inputShape`` as RGB 0-255 floats.
    inputShape : list of int, optional
        One row's input, without the batch dimension: ``[3, H, W]`` (or ``[H, W, 3]``) for an
        image column, which needs it since a module does not declare its input size; for array
        columns it defaults to the column's recorded shape or the first layer's ``in_features``.
    labelCol, predictionCol, probabilityCol, learningRate, metrics, epochs, batchSize,
    validationFraction, earlyStoppingPatience, shuffle, numSlots, seed
        As for :class:`~deepframes.training.keras_estimator.KerasEstimator`; the only metric is
        ``accuracy``.

    Raises
    ------
    deepframes.core.params.InvalidParameterError
        When built or when a Param is set (``setX``, ``copy``, a ``CrossValidator`` grid): a value
        outside what the Param accepts (``TorchEstimator.parameter_constraints()``).

    Examples
    --------
    >>> import deepframes
    >>> from deepframes.training.examples import two_blobs, small_torch_mlp
    >>> spark = deepframes.session("local[2]")
    >>> df = two_blobs(spark, 200)
    >>> fitted = deepframes.TorchEstimator(model=small_torch_mlp, epochs=3, batchSize=20,
    ...                                    learningRate=0.05).fit(df)
    >>> fitted.transform(df).where("prediction = label").count() > 180
    True
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> fitted.write().overwrite().save(folder + "/fitted")
    >>> type(deepframes.ModelTransformer.load(folder + "/fitted")).__name__
    'TorchModel'
    """

    framework = "torch"
    model_class = TorchModel
    model_file_name = "model.pt2"

    inputShape = Param(Params._dummy(), "inputShape",
                       "one row's input shape without the batch dimension, e.g. [3, 64, 64] for images",
                       typeConverter=TypeConverters.toListInt)
    _parameter_constraints = {
        "model": function("a function returning a new torch.nn.Module (so each rank builds its own)",
                          lambda value: callable(value) and not _is_module(value)),
        "loss": (one_of(*LOSSES), function("a function loss(outputs, labels)")),
        "optimizer": (Constraint(f"one of {sorted(OPTIMIZERS)}",
                                 lambda value: isinstance(value, str) and value.lower() in OPTIMIZERS),
                      function("a function parameters -> torch.optim.Optimizer")),
        "metrics": Constraint("['accuracy'] or []", lambda value: value in (["accuracy"], [])),
        "inputShape": POSITIVE_INTS,
    }

    @keyword_only
    def __init__(self, *, model=None, featuresCol="features", labelCol="label", predictionCol="prediction",
                 probabilityCol="probability", loss="cross_entropy", optimizer="adam", learningRate=None,
                 metrics=None, epochs=10, batchSize=32, validationFraction=0.0, earlyStoppingPatience=0,
                 shuffle=True, numSlots=1, seed=42, inputShape=None):
        super().__init__()
        self._setDefault(loss="cross_entropy", optimizer="adam", **self._defaults)
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, model=None, featuresCol="features", labelCol="label", predictionCol="prediction",
                  probabilityCol="probability", loss="cross_entropy", optimizer="adam", learningRate=None,
                  metrics=None, epochs=10, batchSize=32, validationFraction=0.0, earlyStoppingPatience=0,
                  shuffle=True, numSlots=1, seed=42, inputShape=None):
        return self._set(**{name: value for name, value in self._input_kwargs.items() if value is not None})

    def _model_payload(self) -> tuple[bytes, bool]:
        return pickled(self.getOrDefault(self.model), "model factory", "TorchEstimator"), True

    def _loss_payload(self):
        loss = self.getOrDefault(self.loss)
        return pickled(loss, "loss", "TorchEstimator") if callable(loss) else loss

    def _optimizer_payload(self):
        optimizer = self.getOrDefault(self.optimizer)
        return pickled(optimizer, "optimizer factory", "TorchEstimator") if callable(optimizer) else optimizer

    def _cell_shape(self, dataset, features, kind):
        if self.isDefined(self.inputShape):
            return tuple(self.getOrDefault(self.inputShape))
        if kind != "array":
            raise ValueError(
                f"TorchEstimator: featuresCol {features!r} holds images, which are resized to the module's "
                "input, but a torch.nn.Module does not declare its input size; received no inputShape. "
                "Set inputShape=[3, H, W] (or [H, W, 3]) to the size the module takes."
            )
        return super()._cell_shape(dataset, features, kind)

    def _inspect(self, payload, cell_shape):
        import torch

        from .loop import TrainConfig
        from .torch_loop import build_module

        probe = TrainConfig(model=payload[0], model_is_factory=True, feature=None, loss=None, optimizer=None,
                            learning_rate=None, metrics=(), epochs=1, batch_size=1, shuffle=False,
                            seed=self.getOrDefault(self.seed), patience=0, world_size=1)
        module = build_module(probe).eval()
        if cell_shape is None:
            first = next((layer for layer in module.modules() if hasattr(layer, "in_features")), None)
            if first is None:
                return (-1,), _num_outputs(module)
            cell_shape = (int(first.in_features),)
        with torch.no_grad():
            try:
                outputs = module(torch.zeros((2, *cell_shape)))
            except RuntimeError as error:
                raise ValueError(
                    f"TorchEstimator: featuresCol {self.getFeaturesCol()!r} has cells of shape "
                    f"{list(cell_shape)}, which the module does not accept ({str(error).splitlines()[0]}). "
                    "Pick the matching column or change the module's first layer."
                ) from None
        return (-1, *cell_shape), int(outputs.shape[-1])

    def _local_fit(self) -> Callable:
        from .torch_loop import fit_torch

        return fit_torch

    def _rank_function(self) -> Callable:
        from .torch_loop import train_torch_rank

        return train_torch_rank


def _is_module(value: object) -> bool:
    return any(cls.__module__.startswith("torch.nn") for cls in type(value).__mro__)


def _num_outputs(module) -> int:
    last = [layer for layer in module.modules() if hasattr(layer, "out_features")]
    return int(last[-1].out_features) if last else 1


__all__ = ["TorchEstimator", "TorchModel"]
