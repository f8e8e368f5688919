"""The demo's small network: a fixed random-weight convolutional feature extractor, as ONNX.

It is not trained: two seeded random convolution layers with ReLU and pooling turn a 32x32 image
into 512 features (random features, which a linear classifier on top learns to use). It is
written as a real ONNX file, so ``ImageFeaturizer`` runs it like any other network; the model zoo
knows it as ``tiny-cnn``, so saved pipelines load anywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..models import zoo

TINY_CNN = "tiny-cnn"
INPUT_SIZE = zoo.named_model(TINY_CNN).preset.size  # (32, 32): the zoo's entry describes this file



def _weights(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    fan_in = int(np.prod(shape[1:]))
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def write_tiny_cnn(path: str | Path, seed: int = 0) -> Path:
    """Write the tiny network to ``path`` (an ``.onnx`` file); the same seed gives the same file.

    Input ``image``: float32 N x 3 x 32 x 32, RGB scaled to [0, 1]. Output ``features``: N x 512.

    >>> import tempfile, onnxruntime
    >>> file = write_tiny_cnn(tempfile.mkdtemp() + "/tiny.onnx")
    >>> session = onnxruntime.InferenceSession(str(file))
    >>> session.run(None, {"image": np.zeros((2, 3, 32, 32), np.float32)})[0].shape
    (2, 512)
    """
    try:
        from onnx import TensorProto, helper, numpy_helper, save
    except ImportError:
        raise ImportError("The demo's network is written with the onnx package: pip install onnx") from None
    rng = np.random.default_rng(seed)
    initializers = [
        numpy_helper.from_array(_weights(rng, (16, 3, 5, 5)), "conv1_w"),
        numpy_helper.from_array(np.zeros(16, np.float32), "conv1_b"),
        numpy_helper.from_array(_weights(rng, (32, 16, 3, 3)), "conv2_w"),
        numpy_helper.from_array(np.zeros(32, np.float32), "conv2_b"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "conv1_w", "conv1_b"], ["c1"], pads=[2, 2, 2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2_w", "conv2_b"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("AveragePool", ["r2"], ["p2"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Flatten", ["p2"], ["features"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, *INPUT_SIZE])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 512])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="deepframes")
    model.ir_version = 8
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    save(model, str(target))
    return target
