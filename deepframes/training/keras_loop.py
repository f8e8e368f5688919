"""Keras 3 training on one rank: a data-parallel step under MultiWorkerMirroredStrategy.

Keras 3's ``model.fit`` fails under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585), so
the step is built here: ``strategy.run`` over a step that applies ``compile()``'s loss and
optimizer. ``compute_loss`` scales the loss by the number of replicas and the optimizer sums the
replicas' gradients, so every rank applies the average gradient of the global batch to its copy of
the weights, which therefore stay identical (one copy, mirrored).
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import numpy as np

from .data import RankData, epoch_batches, local_batch_size, rank_data
from .loop import EpochHook, EpochSums, TrainConfig, run_epochs, summary


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build_model(config: TrainConfig) -> Any:
    """The model of ``config``: the factory's, or the saved file's (same weights on every rank)."""
    import keras

    keras.utils.set_random_seed(config.seed)
    if config.model_is_factory:
        from pyspark import cloudpickle

        return cloudpickle.loads(config.model)()
    with tempfile.TemporaryDirectory(prefix="deepframes-keras-") as folder:
        path = os.path.join(folder, "model.keras")
        with open(path, "wb") as handle:
            handle.write(config.model)
        return keras.saving.load_model(path, compile=False)


def make_optimizer(optimizer: Any, learning_rate: float | None) -> Any:
    import keras

    if isinstance(optimizer, dict):
        instance = keras.optimizers.get(dict(optimizer))
    else:
        instance = keras.optimizers.get(optimizer)
    if learning_rate is not None:
        instance.learning_rate = learning_rate
    return instance


def _metric_objects(config: TrainConfig) -> list[Any]:
    """Metrics computed on each rank's rows (outside the strategy) and averaged across ranks."""
    import keras

    sparse = "sparse" in str(config.loss)
    objects = []
    for name in config.metrics:
        if name in ("accuracy", "acc"):
            objects.append(keras.metrics.SparseCategoricalAccuracy(name="accuracy") if sparse
                           else keras.metrics.BinaryAccuracy(name="accuracy"))
        else:
            objects.append(keras.metrics.get(name))
    return objects


def _update(metrics: list[Any], sums: EpochSums, y: np.ndarray, predictions: np.ndarray) -> None:
    for metric in metrics:
        metric.reset_state()
        metric.update_state(y, predictions)
        sums.add(metric.name, float(metric.result()), len(y))


class KerasTrainer:
    """Trains ``config``'s model on this rank's rows with the step replicated across ranks."""

    def __init__(self, config: TrainConfig, data: RankData) -> None:
        _quiet_tensorflow()
        import tensorflow as tf

        self.config, self.data = config, data
        if config.world_size > 1:
            communication = tf.distribute.experimental.CommunicationOptions(
                implementation=tf.distribute.experimental.CommunicationImplementation.RING)
            self.strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=communication)
        else:
            self.strategy = tf.distribute.get_strategy()
        with self.strategy.scope():
            self.model = build_model(config)
            self.model.compile(optimizer=make_optimizer(config.optimizer, config.learning_rate), loss=config.loss)
            self.model.optimizer.build(self.model.trainable_variables)
        self.metrics = _metric_objects(config)
        self.local_batch = local_batch_size(config.batch_size, config.world_size, "KerasEstimator")
        self._step = self._make_step()
        # Every rank walks as many rows as the smallest shard holds: same steps, same batch sizes.
        self.usable_rows = int(self.allreduce_min(len(data.y)))

    def allreduce(self, values: np.ndarray) -> np.ndarray:
        """Sum a small vector over the ranks."""
        if self.config.world_size == 1:
            return np.asarray(values, dtype=np.float64)
        import tensorflow as tf

        local = tf.constant(np.asarray(values, dtype=np.float64))
        per_replica = self.strategy.run(lambda: tf.identity(local))
        return self.strategy.reduce("SUM", per_replica, axis=None).numpy()

    def allreduce_min(self, value: int) -> int:
        slots = np.zeros(self.config.world_size)
        slots[self._rank()] = value
        return int(self.allreduce(slots).min())

    def _rank(self) -> int:
        resolver = getattr(self.strategy, "cluster_resolver", None)
        return int(getattr(resolver, "task_id", 0) or 0) if self.config.world_size > 1 else 0

    def _make_step(self):
        import tensorflow as tf

        model, strategy = self.model, self.strategy
        # Accuracy is counted inside the step; other metrics are updated eagerly from predictions.
        self.eager_metrics = [m for m in self.metrics if m.name != "accuracy"]
        count_correct = any(m.name == "accuracy" for m in self.metrics)

        def replica_step(x, y):
            with tf.GradientTape() as tape:
                predictions = model(x, training=True)
                # Divided by the number of replicas: the optimizer sums the replicas' gradients.
                loss = model.compute_loss(x=x, y=y, y_pred=predictions, training=True)
            gradients = tape.gradient(loss, model.trainable_variables)
            model.optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            correct = tf.constant(0.0)
            if count_correct:
                guessed = tf.argmax(predictions, axis=-1, output_type=tf.int64)
                correct = tf.reduce_sum(tf.cast(tf.equal(guessed, tf.cast(y, tf.int64)), tf.float32))
            return loss, correct, predictions

        @tf.function
        def step(x, y):
            loss, correct, predictions = strategy.run(replica_step, args=(x, y))
            local = strategy.experimental_local_results
            return strategy.reduce("SUM", loss, axis=None), local(correct)[0], local(predictions)[0]

        return step

    def train_epoch(self, epoch: int) -> EpochSums:
        sums = EpochSums()
        data = self.data
        losses, corrects, rows_seen = [], [], 0
        for rows in epoch_batches(len(data.y), self.usable_rows, self.local_batch, epoch,
                                  self.config.seed, self.config.shuffle):
            x, y = data.x[rows], data.y[rows]
            loss, correct, predictions = self._step(x, y)
            losses.append(loss * len(y))  # tensors: read once per epoch, not once per step
            corrects.append(correct)
            rows_seen += len(y)
            if self.eager_metrics:
                _update(self.eager_metrics, sums, y, predictions.numpy())
        if rows_seen:
            sums.add("loss", float(sum(float(value) for value in losses)) / rows_seen, rows_seen)
            if len(self.eager_metrics) < len(self.metrics):
                sums.add("accuracy", float(sum(float(value) for value in corrects)) / rows_seen, rows_seen)
        return sums

    def validate(self) -> EpochSums:
        sums = EpochSums()
        data = self.data
        for start in range(0, len(data.y_validation), self.local_batch):
            x = data.x_validation[start:start + self.local_batch]
            y = data.y_validation[start:start + self.local_batch]
            predictions = self.model(x, training=False)
            loss = self.model.compute_loss(x=x, y=y, y_pred=predictions, training=False)
            sums.add("loss", float(loss), len(y))  # outside the strategy: not scaled
            _update(self.metrics, sums, y, np.asarray(predictions))
        return sums

    def fit(self, on_epoch: EpochHook | None = None) -> dict[str, list[float]]:
        has_validation = int(self.allreduce(np.array([len(self.data.y_validation)]))[0]) > 0
        return run_epochs(self.config, self.train_epoch, self.validate if has_validation else None,
                          self.allreduce, on_epoch)

    def model_bytes(self) -> bytes:
        with tempfile.TemporaryDirectory(prefix="deepframes-keras-") as folder:
            path = os.path.join(folder, "model.keras")
            self.model.save(path)
            with open(path, "rb") as handle:
                return handle.read()


def fit_keras(config: TrainConfig, data: RankData, on_epoch: EpochHook | None = None) -> dict:
    """Train on ``data`` (all of it on one rank, or this rank's part); returns history, summary
    and, on rank 0, the trained model's ``.keras`` bytes."""
    trainer = KerasTrainer(config, data)
    started = time.perf_counter()  # the training loop's time: not TensorFlow's start or the model's build
    history = trainer.fit(on_epoch)
    seconds = time.perf_counter() - started
    total_rows = int(trainer.allreduce(np.array([len(data.y)]))[0])
    result = {"history": history, "summary": summary(history, config.world_size, seconds, total_rows)}
    if trainer._rank() == 0:
        result["model"] = trainer.model_bytes()
    return result


def train_keras_rank(ctx: Any, shard: Any, config: TrainConfig) -> dict:
    """A ``Distributor`` rank: read this rank's shard on the executor, then train."""
    data = rank_data(ctx.shard(shard).to_arrow(), config.feature)
    return fit_keras(config, data)


__all__ = ["KerasTrainer", "build_model", "fit_keras", "make_optimizer", "train_keras_rank"]
