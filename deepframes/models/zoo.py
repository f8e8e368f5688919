"""Named models: input size and preprocessing, feature and probability outputs, weights source.

``squeezenet1.1`` is an ONNX file the user points to (``weights=``). The Keras applications are
built on each executor from their name, with ``weights="imagenet"`` (downloaded by Keras on a
machine with internet, then cached), a local weights file, or ``None`` (random but seeded, so
every worker builds the same network: useful for tests).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass

from .spec import ModelSpec, file_digest
from .presets import ImagePreset

logger = logging.getLogger(__name__)

_CAFFE = dict(channel_order="BGR", mean=(103.939, 116.779, 123.68))
_TF = dict(mean=(127.5, 127.5, 127.5), std=(127.5, 127.5, 127.5))


@dataclass(frozen=True)
class NamedModel:
    name: str
    framework: str
    preset: ImagePreset
    feature_output: str | None = None  # ONNX models: the output holding pooled features
    probability_output: str | None = None


NAMED_MODELS = {
    model.name: model
    for model in (
        NamedModel("squeezenet1.1", "onnx",
                   ImagePreset((224, 224), "NCHW", "BGR", mean=(104.0, 117.0, 123.0)),
                   feature_output="features", probability_output="probabilities"),
        NamedModel("VGG16", "keras", ImagePreset((224, 224), **_CAFFE)),
        NamedModel("VGG19", "keras", ImagePreset((224, 224), **_CAFFE)),
        NamedModel("ResNet50", "keras", ImagePreset((224, 224), **_CAFFE)),
        NamedModel("InceptionV3", "keras", ImagePreset((299, 299), **_TF)),
        NamedModel("Xception", "keras", ImagePreset((299, 299), **_TF)),
        NamedModel("MobileNetV2", "keras", ImagePreset((224, 224), **_TF)),
        NamedModel("EfficientNetB0", "keras", ImagePreset((224, 224))),  # rescales inside the model
        # The demo's small network (deepframes.apps.network writes its ONNX file): 32x32 RGB in
        # [0, 1], 512 features from two fixed random convolution layers.
        NamedModel("tiny-cnn", "onnx", ImagePreset((32, 32), "NCHW", "RGB", std=(255.0, 255.0, 255.0)),
                   feature_output="features"),
    )
}

POOLINGS = ("avg", "max", None)
_ONNX_FILES = {
    "squeezenet1.1": ".../squeezenet1.1.onnx (the ONNX model zoo's SqueezeNet 1.1)",
    "tiny-cnn": "tiny-cnn.onnx (deepframes.apps.network.write_tiny_cnn writes it)",
}


def named_model(name: str) -> NamedModel:
    try:
        return NAMED_MODELS[name]
    except KeyError:
        raise ValueError(
            f"Unknown model {name!r}. Expected one of {sorted(NAMED_MODELS)}, or use "
            "ModelTransformer for a model file of your own."
        ) from None


@dataclass(frozen=True)
class KerasApplication:
    """A picklable factory for a ``keras.applications`` network (built on each worker)."""

    name: str
    weights: str | None
    include_top: bool
    pooling: str | None
    input_size: tuple[int, int]

    def __call__(self):
        import keras

        if self.weights is None:
            keras.utils.set_random_seed(0)  # the same random network on every worker
        local_file = self.weights not in (None, "imagenet")
        model = getattr(keras.applications, self.name)(
            include_top=self.include_top,
            weights=None if local_file else self.weights,
            input_shape=(*self.input_size, 3),
            pooling=None if self.include_top else self.pooling,
        )
        if local_file:
            model.load_weights(self.weights)
        return model


def model_spec(name: str, weights: str | None, include_top: bool, pooling: str | None) -> ModelSpec:
    """The ModelSpec of a named model with these weights."""
    model = named_model(name)
    if pooling not in POOLINGS:
        raise ValueError(
            f"Invalid value received for argument `pooling`. Expected 'avg', 'max' or None. "
            f"Received: pooling={pooling!r}"
        )
    if model.framework == "onnx":
        if not weights or not os.path.exists(weights):
            raise FileNotFoundError(
                f"{name} needs its ONNX file: weights='{_ONNX_FILES.get(name, name + '.onnx')}'. "
                f"Received: weights={weights!r}"
            )
        if not include_top and pooling != "avg":
            raise ValueError(
                f"{name}'s ONNX file gives average-pooled features only; use pooling='avg'. "
                f"Received: pooling={pooling!r}"
            )
        return ModelSpec.from_file(weights, "onnx")
    if weights not in (None, "imagenet") and not os.path.exists(weights):
        raise FileNotFoundError(
            f"Weights file not found: {weights}. Use weights='imagenet' (downloaded by Keras), a "
            "local .weights.h5 file, or None for random weights."
        )
    source = weights if weights in (None, "imagenet") else file_digest(weights)
    key = hashlib.sha256(f"{name}:{source}:{include_top}:{pooling}".encode()).hexdigest()
    factory = KerasApplication(name, weights, include_top, pooling, model.preset.size)
    return ModelSpec.from_factory(factory, "keras", key)


def read_labels(path: str) -> list[str]:
    """Class labels from a file: ``index,label`` per line (shared/models style) or one per line."""
    labels: dict[int, str] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            line = line.rstrip("\n")
            if not line:
                continue
            index, _, label = line.partition(",")
            if index.strip().isdigit() and label:
                labels[int(index)] = label.strip()
            else:
                labels[number] = line.strip()
    return [labels.get(index, str(index)) for index in range(max(labels) + 1)] if labels else []


def default_labels(name: str, weights: str | None) -> list[str] | None:
    """ImageNet labels for a named model: beside SqueezeNet's ONNX file, or Keras' class index."""
    if named_model(name).framework == "onnx" and weights:
        candidate = os.path.join(os.path.dirname(os.path.abspath(weights)), "imagenet_labels.txt")
        return read_labels(candidate) if os.path.exists(candidate) else None
    try:
        import json

        import keras

        index_file = keras.utils.get_file(
            "imagenet_class_index.json",
            "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json",
            cache_subdir="models",
        )
        with open(index_file, encoding="utf-8") as handle:
            table = json.load(handle)
        return [table[str(index)][1] for index in range(len(table))]
    except (ImportError, OSError, ValueError, KeyError) as error:  # no Keras, no internet, a bad file
        logger.warning("ImageNet class names are not available through Keras: %s", error)
        return None
