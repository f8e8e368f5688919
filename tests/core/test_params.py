"""Every public stage and estimator follows pyspark.ml's Param conventions: a getX and a setX for
every Param, a constraint for every Param, and a bad value refused with one message when the stage
is built, when the Param is set, and when a copy (a CrossValidator grid) sets it. No Spark needed."""

from __future__ import annotations

import re

import pytest

import deepframes
from deepframes.core.params import InvalidParameterError, check_value, integer, one_of, real

PUBLIC_STAGES = ["ImageFeaturizer", "ImagePredictor", "KerasEstimator", "KerasModel", "ModelTransformer",
                 "NoveltyDetector", "NoveltyModel", "TextEmbedder", "TorchEstimator", "TorchModel", "VectorIndex",
                 "VectorIndexModel"]


def _stage_class(name: str) -> type:
    from deepframes.inference.novelty_stage import NoveltyModel

    return NoveltyModel if name == "NoveltyModel" else getattr(deepframes, name)


def _title(name: str) -> str:
    return name[0].upper() + name[1:]


@pytest.mark.parametrize("name", PUBLIC_STAGES)
def test_stage_has_getter_setter_and_constraint_for_every_param(name):
    cls = _stage_class(name)
    stage = cls()
    table = cls.parameter_constraints()
    for param in stage.params:
        assert callable(getattr(stage, "get" + _title(param.name), None)), f"{name}.get{_title(param.name)}"
        assert callable(getattr(stage, "set" + _title(param.name), None)), f"{name}.set{_title(param.name)}"
        assert param.name in table, f"{name}.{param.name} has no constraint"
        if stage.hasDefault(param):  # a default is a value the stage accepts, and setX takes it back
            default = stage.getOrDefault(param)
            check_value(name, param.name, default, table[param.name])
            assert getattr(stage, "set" + _title(param.name))(default) is stage
            assert getattr(stage, "get" + _title(param.name))() == default


def test_stage_is_exported_from_the_package():
    assert {"KerasModel", "TorchModel"} <= set(deepframes.__all__)
    assert deepframes.KerasModel.__name__ == "KerasModel" and deepframes.TorchModel.__name__ == "TorchModel"


# (stage, Param, bad value, what the message says it must be)
BAD_VALUES = [
    ("ImageFeaturizer", "batchSize", 0, "a positive integer"),
    ("ImageFeaturizer", "batchSize", True, "a positive integer"),
    ("ImageFeaturizer", "batchSize", "64", "a positive integer"),
    ("ImageFeaturizer", "model", "AlexNet", r"one of \['squeezenet1.1', .*\]. Got 'AlexNet' instead. For a model "
                                            "file of your own, use ModelTransformer."),
    ("ImageFeaturizer", "pooling", "min", r"one of \['avg', 'max', None\]"),
    ("ImageFeaturizer", "errors", "ignore", r"one of \['column', 'raise'\]"),
    ("ImageFeaturizer", "inputCol", "", "a non-empty string"),
    ("ImageFeaturizer", "weights", 3, "a non-empty string or None"),
    ("ImagePredictor", "topK", 0, "a positive integer"),
    ("ImagePredictor", "labels", 7, "a list of class names, a non-empty string or None"),
    ("ModelTransformer", "batchSize", -1, "a positive integer"),
    ("ModelTransformer", "framework", "tensorflow", r"one of \['', 'onnx', 'keras', 'torch'\]"),
    ("ModelTransformer", "inputCols", [], "a non-empty list of column names"),
    ("ModelTransformer", "outputNames", "y", "a list of strings"),
    ("TextEmbedder", "maxLength", 0, "a positive integer"),
    ("TextEmbedder", "normalize", "yes", "a boolean"),
    ("NoveltyDetector", "rejectThreshold", 1.5, r"a float in \[0, 1\)"),
    ("NoveltyDetector", "numFolds", 1, r"an integer in \[2, inf\)"),
    ("VectorIndex", "k", 0, "a positive integer"),
    ("VectorIndex", "metric", "manhattan", r"one of \['cosine', 'euclidean'\]"),
    ("VectorIndexModel", "k", 0, "a positive integer"),
    ("KerasEstimator", "learningRate", -1, "a positive float or None"),
    ("KerasEstimator", "epochs", 0, "a positive integer"),
    ("KerasEstimator", "batchSize", 0, "a positive integer"),
    ("KerasEstimator", "numSlots", 0, "a positive integer"),
    ("KerasEstimator", "validationFraction", 1.0, r"a float in \[0, 1\)"),
    ("KerasEstimator", "earlyStoppingPatience", -1, "a non-negative integer"),
    ("KerasEstimator", "shuffle", 1, "a boolean"),
    ("KerasEstimator", "model", 3, "a .keras file, a Keras model or a function returning one"),
    ("KerasEstimator", "optimizer", 3, "a Keras optimizer name or config dict"),
    ("TorchEstimator", "loss", "hinge", r"one of \['cross_entropy', 'nll_loss'\] or a function"),
    ("TorchEstimator", "optimizer", "nope", r"one of \['adam', 'adamw', 'rmsprop', 'sgd'\] or a function"),
    ("TorchEstimator", "metrics", ["f1"], r"\['accuracy'\] or \[\]"),
    ("TorchEstimator", "inputShape", [3, 0], "a list of positive integers"),
    ("TorchEstimator", "seed", 1.5, "an integer"),
]


def _expected(stage: str, param: str, value, must_be: str) -> str:
    shown = re.escape(repr(value))
    return rf"^The '{param}' parameter of {stage} must be {must_be}(\. Got {shown} instead\.)?"


@pytest.mark.parametrize(("name", "param", "value", "must_be"), BAD_VALUES,
                         ids=[f"{row[0]}-{row[1]}-{row[2]!r}" for row in BAD_VALUES])
def test_stage_refuses_a_bad_value_when_built_set_or_copied(name, param, value, must_be):
    cls = _stage_class(name)
    expected = _expected(name, param, value, must_be)
    with pytest.raises(InvalidParameterError, match=expected) as built:
        cls(**{param: value})
    assert "\n" not in str(built.value) and f"Got {value!r} instead." in str(built.value)
    stage = cls()
    before = stage.extractParamMap()
    with pytest.raises(InvalidParameterError, match=expected):
        getattr(stage, "set" + _title(param))(value)
    with pytest.raises(InvalidParameterError, match=expected):
        stage.copy({stage.getParam(param): value})
    assert stage.extractParamMap() == before  # a refused value changes nothing


def test_set_params_checks_every_value_before_setting_any():
    stage = deepframes.ImageFeaturizer()
    with pytest.raises(InvalidParameterError, match="'batchSize' parameter of ImageFeaturizer"):
        stage.setParams(outputCol="vectors", batchSize=0)
    assert stage.getOutputCol() == "features"


def test_error_is_both_a_value_error_and_a_type_error():
    with pytest.raises(ValueError):
        deepframes.VectorIndex(k=0)
    with pytest.raises(TypeError):
        deepframes.TorchEstimator(model=object())


def test_torch_module_in_place_of_a_factory_is_named_in_one_line():
    import torch

    with pytest.raises(InvalidParameterError, match=r"function returning a new torch.nn.Module.*Got a Sequential object"):
        deepframes.TorchEstimator(model=torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.ReLU()))


def test_check_value_describes_intervals_and_choices():
    assert check_value("f", "n", 3, integer(1)) == 3
    with pytest.raises(InvalidParameterError, match=r"^The 'n' parameter of f must be an integer in \[1, 4\]. Got 5 instead.$"):
        check_value("f", "n", 5, integer(1, 4))
    with pytest.raises(InvalidParameterError, match=r"must be a float in \(0, 1\]. Got nan instead"):
        check_value("f", "rate", float("nan"), real(0, 1, closed="right"))
    with pytest.raises(InvalidParameterError, match=r"must be a positive float or one of \['auto'\]. Got 0 instead"):
        check_value("f", "rate", 0, (real(0, None, closed="neither"), one_of("auto")))
    assert check_value("f", "rate", "auto", (real(0, None, closed="neither"), one_of("auto"))) == "auto"
