"""The estimators in pyspark.ml's persistence: KerasEstimator and TorchEstimator save and load
alone and in a Pipeline, a fitted CrossValidatorModel or TrainValidationSplitModel of either
loads and predicts the same, and ModelTransformer.load gives back the class that was saved.
Tiny data (40 rows, 2 epochs): each fit trains in the driver in about a second."""

from __future__ import annotations

import os

import numpy as np
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml.tuning import CrossValidator, ParamGridBuilder, TrainValidationSplit

from deepframes import ImageFeaturizer, KerasEstimator, KerasModel, ModelTransformer, TorchEstimator, TorchModel
from deepframes.training.examples import small_mlp, small_torch_mlp, two_blobs


def smoothed_cross_entropy(outputs, labels):
    """A loss function of the user's own (pickled by reference with the estimator)."""
    import torch

    return torch.nn.functional.cross_entropy(outputs, labels, label_smoothing=0.1)


def _set_params(stage) -> dict:
    return {param.name: value for param, value in stage._paramMap.items()}


def _predictions(fitted, frame) -> tuple[list[float], np.ndarray]:
    rows = fitted.transform(frame).orderBy("id").select("prediction", "probability").collect()
    return [row.prediction for row in rows], np.array([row.probability for row in rows])


def _assert_same_predictions(loaded, fitted, frame) -> None:
    expected, received = _predictions(fitted, frame), _predictions(loaded, frame)
    assert received[0] == expected[0]
    np.testing.assert_allclose(received[1], expected[1], atol=1e-6)


@pytest.fixture
def blobs(spark):
    from pyspark.sql import functions as F

    return two_blobs(spark, 40).withColumn("id", F.monotonically_increasing_id()).cache()


def test_estimators_save_and_load_their_params_files_and_functions(spark, tmp_path):
    keras_estimator = KerasEstimator(model=small_mlp(), optimizer={"class_name": "SGD", "config": {}}, epochs=3,
                                     learningRate=0.05, metrics=["accuracy"])
    torch_estimator = TorchEstimator(model=small_torch_mlp, loss=smoothed_cross_entropy, optimizer="sgd",
                                     inputShape=[4], numSlots=2, batchSize=8)
    for estimator in (keras_estimator, torch_estimator):
        folder = str(tmp_path / type(estimator).__name__)
        estimator.write().overwrite().save(folder)
        loaded = type(estimator).load(folder)
        assert type(loaded) is type(estimator) and loaded.uid == estimator.uid
        expected = {name: value for name, value in _set_params(estimator).items() if name != "model"}
        assert {name: value for name, value in _set_params(loaded).items() if name != "model"} == expected
    # a Keras model object was saved to a file: the file travels with the estimator
    loaded_keras = KerasEstimator.load(str(tmp_path / "KerasEstimator"))
    assert loaded_keras.getModel().startswith(str(tmp_path)) and os.path.isfile(loaded_keras.getModel())
    # functions are pickled as the ranks get them (module-level ones by reference)
    loaded_torch = TorchEstimator.load(str(tmp_path / "TorchEstimator"))
    assert loaded_torch.getModel() is small_torch_mlp and loaded_torch.getLoss() is smoothed_cross_entropy


@pytest.mark.slow
def test_pipeline_with_a_keras_estimator_saves_loads_and_fits(spark, blobs, tmp_path):
    pipeline = Pipeline(stages=[KerasEstimator(model=small_mlp(), epochs=2, batchSize=10, learningRate=0.05)])
    pipeline.write().overwrite().save(str(tmp_path / "pipeline"))
    loaded = Pipeline.load(str(tmp_path / "pipeline"))
    (estimator,) = loaded.getStages()
    assert isinstance(estimator, KerasEstimator) and estimator.getEpochs() == 2
    fitted = loaded.fit(blobs)
    fitted.write().overwrite().save(str(tmp_path / "fitted"))
    _assert_same_predictions(PipelineModel.load(str(tmp_path / "fitted")), fitted, blobs)
    # ModelTransformer.load of a saved KerasModel gives a KerasModel, with its Params
    fitted.stages[0].write().overwrite().save(str(tmp_path / "stage"))
    stage = ModelTransformer.load(str(tmp_path / "stage"))
    assert type(stage) is KerasModel and stage.getPredictionCol() == "prediction"
    _assert_same_predictions(stage, fitted.stages[0], blobs)
    with pytest.raises(ValueError, match=r"holds a KerasModel, not a ImageFeaturizer. Load it with KerasModel.load"):
        ImageFeaturizer.load(str(tmp_path / "stage"))


# framework -> (estimator, fitted class, model factory, the learning rates CrossValidator compares)
ESTIMATORS = {
    "keras": (lambda: KerasEstimator(model=small_mlp, epochs=2, batchSize=10), KerasModel, small_mlp, [0.05, 0.01]),
    "torch": (lambda: TorchEstimator(model=small_torch_mlp, epochs=2, batchSize=10), TorchModel, small_torch_mlp,
              [0.05]),
}


@pytest.mark.slow
@pytest.mark.parametrize("framework", sorted(ESTIMATORS))
@pytest.mark.parametrize("validator", ["CrossValidator", "TrainValidationSplit"])
def test_fitted_validator_saves_loads_and_predicts_the_same(spark, blobs, tmp_path, framework, validator):
    make, model_class, factory, rates = ESTIMATORS[framework]
    estimator = make()
    evaluator = MulticlassClassificationEvaluator(metricName="accuracy")
    if validator == "CrossValidator":  # 2 folds x 1 or 2 learning rates, then the refit: 3 or 5 fits
        grid = ParamGridBuilder().addGrid(estimator.learningRate, rates).build()
        fitted = CrossValidator(estimator=estimator, estimatorParamMaps=grid, evaluator=evaluator, numFolds=2,
                                seed=1).fit(blobs)
    else:  # one learning rate, then the refit: 2 fits
        grid = ParamGridBuilder().addGrid(estimator.learningRate, [0.05]).build()
        fitted = TrainValidationSplit(estimator=estimator, estimatorParamMaps=grid, evaluator=evaluator,
                                      trainRatio=0.75, seed=1).fit(blobs)
    folder = str(tmp_path / "validator")
    fitted.write().overwrite().save(folder)
    loaded = type(fitted).load(folder)
    assert type(loaded.bestModel) is model_class
    assert loaded.getEstimator().getModel() is factory and loaded.getEstimator().uid == estimator.uid
    assert [{param.name: value for param, value in grid_map.items()} for grid_map in loaded.getEstimatorParamMaps()] \
        == [{param.name: value for param, value in grid_map.items()} for grid_map in grid]
    metrics = "avgMetrics" if validator == "CrossValidator" else "validationMetrics"
    assert getattr(loaded, metrics) == getattr(fitted, metrics)
    _assert_same_predictions(loaded, fitted, blobs)
