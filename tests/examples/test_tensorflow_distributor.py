"""spark-tensorflow-distributor's README example, unchanged but for the import and the data
(random 28x28 digits instead of the MNIST download), on local[2] and local-cluster[2,1,1024]."""

from __future__ import annotations

import pytest

from deepframes.compat import MirroredStrategyRunner  # was: from spark_tensorflow_distributor import ...

pytestmark = pytest.mark.slow


# Adapted from https://www.tensorflow.org/tutorials/distribute/multi_worker_with_keras
def train():
    import tensorflow as tf
    import uuid  # noqa: F401 - as in the original

    BUFFER_SIZE = 10000
    BATCH_SIZE = 64

    def make_datasets():
        import numpy as np  # the one change: random digits instead of the MNIST download

        rng = np.random.default_rng(0)
        mnist_images, mnist_labels = rng.integers(0, 256, (640, 28, 28)), rng.integers(0, 10, 640)

        dataset = tf.data.Dataset.from_tensor_slices((
            tf.cast(mnist_images[..., tf.newaxis] / 255.0, tf.float32),
            tf.cast(mnist_labels, tf.int64))
        )
        dataset = dataset.repeat().shuffle(BUFFER_SIZE).batch(BATCH_SIZE)
        return dataset

    def build_and_compile_cnn_model():
        model = tf.keras.Sequential([
            tf.keras.layers.Conv2D(32, 3, activation='relu', input_shape=(28, 28, 1)),
            tf.keras.layers.MaxPooling2D(),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(64, activation='relu'),
            tf.keras.layers.Dense(10, activation='softmax'),
        ])
        model.compile(
            loss=tf.keras.losses.sparse_categorical_crossentropy,
            optimizer=tf.keras.optimizers.SGD(learning_rate=0.001),
            metrics=['accuracy'],
        )
        return model

    train_datasets = make_datasets()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    train_datasets = train_datasets.with_options(options)
    multi_worker_model = build_and_compile_cnn_model()
    history = multi_worker_model.fit(x=train_datasets, epochs=3, steps_per_epoch=5)
    return len(history.history["loss"])


def test_readme_example_on_local(spark):
    assert MirroredStrategyRunner(num_slots=2, use_gpu=False).run(train) == 3


@pytest.mark.cluster
def test_readme_example_on_local_cluster(cluster_spark):
    assert MirroredStrategyRunner(num_slots=2, use_gpu=False).run(train) == 3
