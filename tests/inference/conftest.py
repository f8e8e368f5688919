"""Toy models: one dense layer (4 -> 3, ReLU) with the same weights in Keras, PyTorch and ONNX."""

from __future__ import annotations

import numpy as np
import pytest

WEIGHTS = np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(4, 3)
BIAS = np.array([0.1, -0.2, 0.3], dtype=np.float32)


def reference(x: np.ndarray) -> np.ndarray:
    return np.maximum(x @ WEIGHTS + BIAS, 0.0)


def _keras(folder) -> str:
    import keras

    model = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(3, activation="relu", name="y")])
    model.layers[-1].set_weights([WEIGHTS, BIAS])
    path = str(folder / "toy.keras")
    model.save(path)
    return path


def _torch_module():
    import torch

    class Dense(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 3)
            with torch.no_grad():
                self.linear.weight.copy_(torch.from_numpy(WEIGHTS.T.copy()))
                self.linear.bias.copy_(torch.from_numpy(BIAS))

        def forward(self, x):
            return torch.relu(self.linear(x))

    return Dense().eval()


def _torchscript(folder) -> str:
    import torch

    path = str(folder / "toy.pt")
    torch.jit.script(_torch_module()).save(path)
    return path


def _torch_export(folder) -> str:
    import torch

    batch = torch.export.Dim("batch")
    program = torch.export.export(_torch_module(), (torch.zeros(2, 4),), dynamic_shapes={"x": {0: batch}})
    path = str(folder / "toy.pt2")
    torch.export.save(program, path)
    return path


def _onnx(folder) -> str:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["z"]),
         helper.make_node("Relu", ["z"], ["y"])],
        "dense",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(WEIGHTS, "W"), numpy_helper.from_array(BIAS, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = str(folder / "toy.onnx")
    onnx.save(model, path)
    return path


# format -> (file maker, model input name, model output name)
TOY_FORMATS = {
    "keras": (_keras, "x", "y"),
    "torchscript": (_torchscript, "x", "output"),
    "torch_export": (_torch_export, "x", "output"),
    "onnx": (_onnx, "x", "y"),
}


@pytest.fixture(scope="session")
def toy_models(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("toy_models")
    return {name: maker(folder) for name, (maker, _, _) in TOY_FORMATS.items()}


@pytest.fixture(scope="session")
def toy_inputs() -> np.ndarray:
    return np.random.default_rng(3).normal(size=(50, 4)).astype(np.float32)


@pytest.fixture(scope="session")
def text_encoders(tmp_path_factory) -> dict:
    """A tiny tokenizer and transformer encoder made here: ``{"onnx": folder, "torchscript": folder}``
    (``tests.inference.text_models``)."""
    from tests.inference.text_models import build_text_encoders

    return build_text_encoders(tmp_path_factory.mktemp("text_encoders"))
