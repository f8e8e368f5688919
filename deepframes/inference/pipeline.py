"""One interpreter for fitted pipelines: a model stage, or an ``ImageFeaturizer -> [StringIndexer]
-> classifier -> [IndexToString]`` PipelineModel, turned into one batch function.

The result is an ``InferencePlan``: the network, then the classifier as a NumPy head (logistic
regression, linear SVM or multilayer perceptron), then the labels; with the pipeline's
``NoveltyModel`` (what ``deepframes train`` fits), the out-of-distribution test on the features
too, so photos unlike the training ones get no label. SQL functions run it in an
Arrow UDF, and ``PipelineFunction`` runs it in-process on encoded photos (the web service and
``predict``), so no answer needs a Spark job and every caller gets the same answer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa
from pyspark.ml import PipelineModel, Transformer
from pyspark.ml.classification import (
    LinearSVCModel,
    LogisticRegressionModel,
    MultilayerPerceptronClassificationModel,
)
from pyspark.ml.feature import IndexToString, StringIndexerModel

from .heads import Classifier, Head, LinearHead, MLPHead
from .images import ImageFeaturizer, ImagePredictor
from .novelty_stage import NoveltyModel
from .runner import InferencePlan, TopK, judge, network_outputs, prepare
from .saved import SavedPipeline
from .text import TextEmbedder
from .transformer import ModelTransformer

logger = logging.getLogger(__name__)

SUPPORTED = ("ImageFeaturizer -> [NoveltyModel] -> [StringIndexer] -> LogisticRegression, LinearSVC or "
             "MultilayerPerceptronClassifier -> [IndexToString]")
_CLASSIFIERS = (LogisticRegressionModel, LinearSVCModel, MultilayerPerceptronClassificationModel)


def head_of(classifier: Transformer) -> Head:
    """The NumPy head computing ``classifier``'s class scores from its features."""
    if isinstance(classifier, LogisticRegressionModel):
        return LinearHead(classifier.coefficientMatrix.toArray(), classifier.interceptVector.toArray(), True)
    if isinstance(classifier, LinearSVCModel):
        return LinearHead(classifier.coefficients.toArray()[np.newaxis], np.array([classifier.intercept]), False)
    if isinstance(classifier, MultilayerPerceptronClassificationModel):
        return MLPHead.from_flat(list(classifier.getLayers()), classifier.weights.toArray())
    raise TypeError(f"No head runs a {type(classifier).__name__}; supported pipelines: {SUPPORTED}.")


def _labels(stages: Sequence[Transformer], classifier: Transformer) -> tuple[str, ...]:
    """Class names: from the StringIndexer that indexed the label, or the IndexToString after
    it; without either, the class indices as MLlib predicts them (``"0.0"``, ``"1.0"``...)."""
    for stage in stages:
        if isinstance(stage, StringIndexerModel) and stage.getOutputCol() == classifier.getLabelCol():
            return tuple(stage.labels)
        if isinstance(stage, IndexToString) and stage.isDefined(stage.labels):
            return tuple(stage.getLabels())
    return tuple(str(float(index)) for index in range(int(classifier.numClasses)))


def pipeline_classifier(model: PipelineModel) -> tuple[ImageFeaturizer, Classifier]:
    """The featurizer and the classifier (head and labels) of a fitted image pipeline."""
    stages = list(model.stages)
    featurizers = [stage for stage in stages if isinstance(stage, ImageFeaturizer)]
    classifiers = [stage for stage in stages if isinstance(stage, _CLASSIFIERS)]
    others = [stage for stage in stages
              if not isinstance(stage, (ImageFeaturizer, NoveltyModel, StringIndexerModel, IndexToString, *_CLASSIFIERS))]
    if len(featurizers) != 1 or len(classifiers) != 1 or others:
        names = [type(stage).__name__ for stage in stages]
        raise TypeError(f"Supported pipelines are {SUPPORTED}; this one is {names}.")
    featurizer, classifier = featurizers[0], classifiers[0]
    if classifier.getFeaturesCol() != featurizer.getOutputCol():
        raise ValueError(
            f"The classifier reads {classifier.getFeaturesCol()!r} but the featurizer writes "
            f"{featurizer.getOutputCol()!r}; set the classifier's featuresCol to the featurizer's outputCol."
        )
    return featurizer, Classifier(head_of(classifier), _labels(stages, classifier))


def pipeline_novelty(model: PipelineModel | SavedPipeline) -> NoveltyModel | None:
    """The out-of-distribution test of a fitted image pipeline (None: it has none), checked to read
    the featurizer's output."""
    if isinstance(model, SavedPipeline):
        return model.novelty
    tests = [stage for stage in model.stages if isinstance(stage, NoveltyModel)]
    if not tests:
        return None
    featurizer, _ = pipeline_classifier(model)
    if len(tests) > 1 or tests[0].getFeaturesCol() != featurizer.getOutputCol():
        raise ValueError(
            f"A pipeline takes one NoveltyModel reading the featurizer's output {featurizer.getOutputCol()!r}; "
            f"this one has {len(tests)} reading {[test.getFeaturesCol() for test in tests]}."
        )
    return tests[0]


def compile_pipeline(model: Transformer, top: int = 1) -> InferencePlan:
    """The batch plan of a model stage or a fitted image pipeline.

    A pipeline (fitted, or read without Spark by ``saved.read_saved_pipeline``)'s plan ends in its classifier and its ``top`` best labels (``top=1``: the label
    alone); an ``ImagePredictor``'s in its labels likewise; an ``ImageFeaturizer`` or a
    ``ModelTransformer`` or a ``TextEmbedder`` gives its outputs as they are.
    """
    if isinstance(model, (PipelineModel, SavedPipeline)):
        featurizer, classifier = ((model.featurizer, model.classifier) if isinstance(model, SavedPipeline)
                                  else pipeline_classifier(model))
        probabilistic = getattr(classifier.head, "probabilistic", True)
        novelty = pipeline_novelty(model)
        if novelty is None:
            logger.info("The pipeline has no NoveltyModel (out-of-distribution test): every photo gets a label.")
        return replace(featurizer.inference_plan(), head=classifier.head,
                       top_k=TopK(top, classifier.labels, label_only=top == 1, probabilities=probabilistic),
                       novelty=novelty.novelty_test() if novelty is not None else None)
    if isinstance(model, ImagePredictor):
        plan = model.inference_plan()
        return replace(plan, top_k=replace(plan.top_k, k=top, label_only=top == 1))
    if isinstance(model, (ImageFeaturizer, ModelTransformer, TextEmbedder)):
        return model.inference_plan()
    raise TypeError(
        f"Expected a ModelTransformer, an ImageFeaturizer, an ImagePredictor or a fitted PipelineModel "
        f"({SUPPORTED}); received {type(model).__name__}."
    )


@dataclass
class Answer:
    """One photo's classes, best first, as ``(label, score)``; or why it could not be read.

    A photo the pipeline's out-of-distribution test does not recognise has ``recognised`` False,
    no ``top``, and in ``hint`` the labels the classifier leans to, best first: a hint, not an
    answer. ``typicality`` is the test's score (None without a test).
    """

    top: list[tuple[str, float | None]]
    error: str | None = None
    recognised: bool = True
    hint: list[str] = field(default_factory=list)
    typicality: float | None = None
    features: np.ndarray | None = field(default=None, repr=False)  # the network's, as the classifier saw them
    similar: list = field(default_factory=list)  # the training photos most like it (apps.similar.SimilarPhoto)


class PipelineFunction:
    """A fitted image pipeline (or an ``ImagePredictor``) as an in-process function of encoded
    photos: no Spark job, the same plan SQL runs.

    Examples
    --------
    >>> import deepframes
    >>> from pyspark.ml import Pipeline
    >>> from pyspark.ml.classification import LogisticRegression
    >>> from pyspark.ml.feature import StringIndexer
    >>> spark = deepframes.session("local[2]")
    >>> images = deepframes.read_images("../shared/data/pets/images/[AB]*_1?.jpg", label="filename")
    >>> featurizer = deepframes.ImageFeaturizer(model="squeezenet1.1",
    ...     weights="../shared/models/squeezenet1.1.onnx")
    >>> fitted = Pipeline(stages=[featurizer, StringIndexer(inputCol="label", outputCol="index"),
    ...     LogisticRegression(labelCol="index")]).fit(images)
    >>> classify = PipelineFunction(fitted)
    >>> photo = open("../shared/data/pets/images/Bengal_10.jpg", "rb").read()
    >>> classify([photo], top=1)[0].top[0][0]
    'Bengal'
    """

    def __init__(self, model: Transformer | SavedPipeline) -> None:
        self.plan = compile_pipeline(model, top=1)
        if self.plan.top_k is None:
            raise TypeError(f"PipelineFunction classifies photos: give it a fitted pipeline ({SUPPORTED}) or an ImagePredictor.")
        self.labels = self.plan.top_k.labels

    def scores(self, photos: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray | None, list[str | None]]:
        """``(scores, typicality, errors)``: one row of class scores per photo that decoded (in
        order), their typicality (None without an out-of-distribution test), and per photo the
        reason it did not decode (None when it did)."""
        _, scores, typicality, errors = self._judged(photos)
        return scores, typicality, errors

    def _judged(self, photos: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list[str | None]]:
        """``scores`` with the network's features of each photo that decoded first."""
        column = pa.array(list(photos), pa.binary())
        batch = pa.RecordBatch.from_arrays([column], names=[self.plan.inputs[0].column])
        prepared = prepare(batch, self.plan)
        errors = [prepared.failures.get(index) for index in range(len(photos))]
        if prepared.num_rows == 0:
            none = np.zeros((0, len(self.labels)))
            return none, none, None if self.plan.novelty is None else np.zeros(0), errors
        (features,) = network_outputs(prepared.feeds, self.plan, prepared.num_rows)
        scores, typicality = judge(features, self.plan)
        self.plan.top_k.check(scores.shape[1])
        return features, scores, typicality, errors

    def __call__(self, photos: Sequence[bytes], top: int = 3) -> list[Answer]:
        """The ``top`` classes of each photo, best first; for a photo not recognised, the ``top``
        labels as a hint. Each answer carries the photo's ``features`` too."""
        features, scores, typicality, errors = self._judged(photos)
        novelty = self.plan.novelty
        recognised = iter(novelty.accepts(typicality) if novelty is not None else [True] * len(scores))
        typical = iter(typicality if typicality is not None else [None] * len(scores))
        rows, vectors = iter(scores), iter(features)
        answers = []
        for error in errors:
            if error is not None:
                answers.append(Answer([], error))
                continue
            row, known, score, vector = next(rows), bool(next(recognised)), next(typical), next(vectors)
            order = np.argsort(-row, kind="stable")[:top]
            score = None if score is None else float(score)
            if not known:
                answers.append(Answer([], recognised=False, hint=[self.labels[i] for i in order], typicality=score,
                                      features=vector))
                continue
            probability = self.plan.top_k.probabilities
            answers.append(Answer([(self.labels[i], float(row[i]) if probability else None) for i in order],
                                  typicality=score, features=vector))
        return answers


__all__ = ["Answer", "PipelineFunction", "SUPPORTED", "compile_pipeline", "head_of", "pipeline_classifier",
           "pipeline_novelty"]
