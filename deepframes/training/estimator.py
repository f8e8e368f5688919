"""What the Keras and PyTorch estimators share: their Params, the checks made before any rank
starts, the Distributor run, save/load, and ``fitMultiple`` for pyspark.ml's model selection."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pyspark.ml import Estimator
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasFeaturesCol, HasLabelCol, HasPredictionCol, HasProbabilityCol, HasSeed
from pyspark.sql import DataFrame

from ..core.params import BOOLEAN, NONE, STRINGS, ValidatedParams, integer, real
from ..core.persistence import ModelFileStage, pickled
from .data import (
    RANK,
    DataSummary,
    FeatureSpec,
    check_feature_shape,
    check_labels,
    feature_kind,
    indexed_frame,
    local_batch_size,
    summarize,
    training_frame,
    with_ranks,
)
from .loop import TrainConfig
from .model import ClassifierModel


class TrainingParams(ValidatedParams, HasFeaturesCol, HasLabelCol, HasPredictionCol, HasProbabilityCol, HasSeed):
    """The Params of both estimators (pyspark.ml conventions: camelCase, type converters, checked
    when set; ``model``, ``loss`` and ``optimizer`` are constrained by each estimator)."""

    model = Param(Params._dummy(), "model", "the model: a function returning one, or a saved model file")
    loss = Param(Params._dummy(), "loss", "loss: a name or (PyTorch) a callable")
    optimizer = Param(Params._dummy(), "optimizer", "optimizer: a name, a Keras config dict, or (PyTorch) a factory")
    learningRate = Param(Params._dummy(), "learningRate", "learning rate (None: the optimizer's default)",
                         typeConverter=TypeConverters.toFloat)
    metrics = Param(Params._dummy(), "metrics", "metrics per epoch, e.g. ['accuracy']",
                    typeConverter=TypeConverters.toListString)
    epochs = Param(Params._dummy(), "epochs", "passes over the training rows", typeConverter=TypeConverters.toInt)
    batchSize = Param(Params._dummy(), "batchSize", "rows per step, over all slots together (global)",
                      typeConverter=TypeConverters.toInt)
    validationFraction = Param(Params._dummy(), "validationFraction", "share of rows held out for validation",
                               typeConverter=TypeConverters.toFloat)
    earlyStoppingPatience = Param(Params._dummy(), "earlyStoppingPatience",
                                  "epochs without a better validation loss before stopping (0: never)",
                                  typeConverter=TypeConverters.toInt)
    shuffle = Param(Params._dummy(), "shuffle", "reshuffle the rows every epoch", typeConverter=TypeConverters.toBoolean)
    numSlots = Param(Params._dummy(), "numSlots", "Spark tasks training data-parallel",
                     typeConverter=TypeConverters.toInt)

    _parameter_constraints = {
        "learningRate": (real(0, None, closed="neither"), NONE), "metrics": STRINGS, "epochs": integer(1),
        "batchSize": integer(1), "validationFraction": real(0, 1, closed="left"),
        "earlyStoppingPatience": integer(0), "shuffle": BOOLEAN, "numSlots": integer(1),
    }

    _defaults = dict(featuresCol="features", labelCol="label", predictionCol="prediction",
                     probabilityCol="probability", metrics=["accuracy"], epochs=10, batchSize=32,
                     validationFraction=0.0, earlyStoppingPatience=0, shuffle=True, numSlots=1, seed=42)


class TrainingEstimator(Estimator, TrainingParams, ModelFileStage):
    """Base of ``KerasEstimator`` and ``TorchEstimator``; subclasses say how to read the model.

    ``save`` keeps what the ranks are sent: a model file is copied with the estimator, a model
    factory and a loss or optimizer function are pickled (cloudpickle), so a ``Pipeline``,
    ``CrossValidator`` or ``TrainValidationSplit`` holding the estimator saves and loads.
    """

    file_params = ("model",)
    pickled_params = ("model", "loss", "optimizer")

    framework = ""
    model_class: type = ClassifierModel
    model_file_name = "model"

    # ---- framework hooks ------------------------------------------------------------------
    def _model_payload(self) -> tuple[bytes, bool]:
        """The model as (bytes, is_factory) for the ranks."""
        raise NotImplementedError

    def _inspect(self, payload: tuple[bytes, bool], cell_shape: tuple[int, ...] | None) -> tuple[tuple[int, ...], int]:
        """The model's input shape (batch first) and number of classes, read on the driver."""
        raise NotImplementedError

    def _rank_function(self) -> Callable:
        raise NotImplementedError

    def _cell_shape(self, dataset: DataFrame, features: str, kind: str) -> tuple[int, ...] | None:
        """One row's input shape as the data tells it (an array column's recorded shape)."""
        from .data import column_cell_shape

        return column_cell_shape(dataset, features) if kind == "array" else None

    def _loss_payload(self) -> Any:
        return self.getOrDefault(self.loss)

    def _optimizer_payload(self) -> Any:
        return self.getOrDefault(self.optimizer)

    # ---- checks ---------------------------------------------------------------------------
    def _name(self) -> str:
        return type(self).__name__

    def check_params(self) -> None:
        """What the constraint table cannot say alone (each value is checked when set): a model
        is given, and ``batchSize`` splits over ``numSlots``; raised before any Spark job."""
        stage = self._name()
        if not self.isDefined(self.model):
            raise ValueError(f"{stage} needs a model: {stage}(model=...). Received no model.")
        local_batch_size(self.getOrDefault(self.batchSize), self.getOrDefault(self.numSlots), stage)

    def prepare(self, dataset: DataFrame) -> tuple[DataFrame, TrainConfig, DataSummary]:
        """Check everything that can be checked on the driver and build the ranks' config.

        Returns the training frame (features, label, validation flag and each row's index in
        the order of the global batches), the config and the data's summary."""
        from ..distributed import preflight

        self.check_params()
        preflight.check_slots(dataset.sparkSession, self.getOrDefault(self.numSlots))
        stage = self._name()
        features = self.getFeaturesCol()
        frame = training_frame(dataset, features, self.getLabelCol(),
                               self.getOrDefault(self.validationFraction), self.getOrDefault(self.seed))
        kind = feature_kind(dataset, features)
        cell = self._cell_shape(dataset, features, kind)
        payload = self._model_payload()
        input_shape, num_classes = self._inspect(payload, cell)
        data_summary = summarize(frame, kind)
        check_feature_shape(dataset, features, kind, input_shape, stage, data_summary.cell_size)
        check_labels(data_summary, num_classes, stage)
        config = self.build_config(FeatureSpec(kind, tuple(input_shape)))
        return indexed_frame(frame, data_summary), config, data_summary

    def build_config(self, feature: FeatureSpec) -> TrainConfig:
        """The ranks' config from these Params (the model pickled, nothing checked against data)."""
        payload = self._model_payload()
        learning_rate = self.getOrDefault(self.learningRate) if self.isDefined(self.learningRate) else None
        return TrainConfig(
            model=payload[0], model_is_factory=payload[1], feature=feature,
            loss=self._loss_payload(), optimizer=self._optimizer_payload(), learning_rate=learning_rate,
            metrics=tuple(self.getOrDefault(self.metrics)), epochs=self.getOrDefault(self.epochs),
            batch_size=self.getOrDefault(self.batchSize), shuffle=self.getOrDefault(self.shuffle),
            seed=self.getOrDefault(self.seed), patience=self.getOrDefault(self.earlyStoppingPatience),
            world_size=self.getOrDefault(self.numSlots),
        )

    def _local_fit(self) -> Callable:
        """``fit(config, data, on_epoch)`` training in this process (one slot)."""
        raise NotImplementedError

    # ---- fitting --------------------------------------------------------------------------
    def _fit(self, dataset: DataFrame) -> ClassifierModel:
        frame, config, data_summary = self.prepare(dataset)
        if config.world_size == 1 and trains_in_driver(dataset.sparkSession):
            return self.fitted_model(self.fit_in_driver(frame, config))
        return self.fitted_model(self.run_ranks(frame, config, data_summary.num_train))

    def fit_in_driver(self, frame: DataFrame, config: TrainConfig) -> dict:
        """One slot on a local master: train in this process on the rows a rank would read.

        On ``local[N]`` the executors are threads of this process's JVM on this machine, so a
        rank process would only add its start and its framework's import (8-10 s of an 11.8 s
        fit measured here, against 1.7 s of training) to the same work on the same data.
        """
        from .data import rank_data

        return self._local_fit()(config, rank_data(frame.toArrow(), config.feature))

    def run_ranks(self, frame: DataFrame, config: TrainConfig, num_train: int, timeout: float | None = None) -> dict:
        """Train on ``config.world_size`` slots, slot r reading the r-th part of every global
        batch of ``frame`` (an indexed training frame); rank 0's result. Past ``timeout``
        seconds the ranks are stopped and ``RankFailedError`` raised."""
        from ..distributed import Distributor

        sharded = with_ranks(frame, num_train, config.batch_size, config.world_size)
        distributor = Distributor(config.world_size, shard_by=RANK, timeout=timeout)
        return distributor.run(self._rank_function(), sharded, config)

    def fitted_model(self, result: dict) -> ClassifierModel:
        """The fitted stage around a rank's result (model bytes, history, summary)."""
        import json

        from .model import write_model_file

        path = write_model_file(result["model"], result.get("model_file_name", self.model_file_name))
        history = json.dumps({"history": result["history"], "summary": result["summary"]})
        fitted = self.model_class(model=path, inputCols=[self.getFeaturesCol()], framework=self.framework,
                                  predictionCol=self.getPredictionCol(), probabilityCol=self.getProbabilityCol(),
                                  trainingHistory=history)
        return fitted

    def fitMultiple(self, dataset: DataFrame, paramMaps: Sequence[dict]) -> Any:
        """Fit one model per param map; a thread-safe iterator of ``(index, model)``.

        Every param map's Params are checked before the first fit, so a bad grid fails at once.
        ``CrossValidator``/``TrainValidationSplit`` with ``parallelism=N`` draw from the iterator
        on N threads, and each fit is its own Spark job, so N fits run at once.
        """
        for param_map in paramMaps:
            self.copy(param_map).check_params()
        return super().fitMultiple(dataset, paramMaps)


def trains_in_driver(spark: Any) -> bool:
    """Whether a one-slot fit trains in the driver: a classic session on a ``local[N]`` master
    (``local-cluster`` and real clusters train on an executor)."""
    from ..session import is_connect, is_local_master

    return not is_connect(spark) and is_local_master(spark.sparkContext.master)


__all__ = ["TrainingEstimator", "TrainingParams", "pickled", "trains_in_driver"]
