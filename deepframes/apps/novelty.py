""""Not recognised" in the breed application: ``train`` fits the out-of-distribution test
(``deepframes.inference.novelty``) and measures it; ``predict`` and ``serve`` load it with the
model, with ``--reject-threshold`` to make it stricter or looser.

``metrics.json`` records two rates under ``novelty``: ``held_out_accepted``, the share of the
held-out test split that still gets a class, and ``non_pets_rejected``, the share of the photos
of ``nonpets.py`` (none of them a pet) answered "not recognised".
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from pyspark.errors import AnalysisException
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession

from .. import storage
from ..inference import ImageFeaturizer
from ..inference.novelty import check_reject_threshold
from ..inference.novelty_stage import NoveltyDetector, NoveltyModel
from ..inference.pipeline import PipelineFunction, pipeline_novelty
from .errors import InputError
from .nonpets import non_pet_photos, rejection_rates

logger = logging.getLogger(__name__)

NUM_BLURRED = 20  # held-out photos blurred into non-pets


def check_threshold(value: float) -> float:
    """``--reject-threshold`` as a float in [0, 1); InputError (exit 2) otherwise."""
    try:
        return check_reject_threshold(value)
    except ValueError as error:
        raise InputError(f"--reject-threshold: {error}") from None


def fit_novelty(train: DataFrame, num_train: int, reject_threshold: float, seed: int) -> NoveltyModel | None:
    """The test fitted on the training split's ``features`` and ``label``, calibrated by
    cross-validation inside it (5 folds; fewer for fewer than 10 photos; none below 4)."""
    if num_train < 4:
        logger.warning("%d training photos are too few to calibrate the 'not recognised' test (4 at least): "
                       "the model gives every photo a class.", num_train)
        return None
    return NoveltyDetector(featuresCol="features", labelCol="label", rejectThreshold=reject_threshold,
                           numFolds=min(5, num_train // 2), seed=seed).fit(train)


def _held_out_photos(test: DataFrame, spark: SparkSession) -> list[tuple[str, bytes]]:
    """Up to ``NUM_BLURRED`` held-out photos (spread over the classes), as encoded files."""
    if "path" not in test.columns:
        return []
    # Features copied from another machine name photos that are not here: the rates use those that are.
    paths = storage.maybe_present(sorted(row.path for row in test.select("path").collect()))
    chosen = paths[:: max(1, len(paths) // NUM_BLURRED)][:NUM_BLURRED]
    if not chosen:
        return []
    try:
        rows = spark.read.format("binaryFile").load(chosen).select("path", "content").collect()
    except AnalysisException as error:  # a URI that is gone
        logger.warning("The 'not recognised' test is measured without held-out photos: %s", str(error).splitlines()[0])
        return []
    return [(Path(row.path).name, bytes(row.content)) for row in rows]


def novelty_rates(pipeline: PipelineModel, novelty: NoveltyModel | None, test: DataFrame, spark: SparkSession) -> dict:
    """How the pipeline's test does: held-out photos accepted, non-pet photos rejected."""
    if novelty is None:
        return {"reject_threshold": None, "note": "too few training photos to calibrate the test"}
    typicality = np.array([row[0] for row in novelty.transform(test).select(novelty.getOutputCol()).collect()])
    accepted = novelty.novelty_test().accepts(typicality)
    rates = {"reject_threshold": novelty.getRejectThreshold(),
             "held_out_accepted": round(float(accepted.mean()), 4) if len(accepted) else None,
             "num_held_out": int(len(accepted))}
    if not any(isinstance(stage, ImageFeaturizer) for stage in pipeline.stages):
        rates["non_pets_rejected"] = None
        rates["note"] = "trained on features without their featurizer: the non-pet photos cannot be featurized"
        return rates
    classify = PipelineFunction(pipeline)

    def recognised(photos: list[bytes]) -> list[bool]:
        # An unreadable photo counts as recognised: only a "not recognised" answer is a rejection.
        return [answer.error is not None or answer.recognised for answer in classify(photos, top=1)]

    measured = rejection_rates(recognised, non_pet_photos(_held_out_photos(test, spark)))
    rates.update({"non_pets_rejected": measured["rejected"], "num_non_pets": measured["num_photos"],
                  "non_pets": measured["kinds"], "non_pets_recognised": measured["recognised"]})
    return rates


def guard_model(model: PipelineModel, model_dir: str | Path, reject_threshold: float | None = None) -> None:
    """Set ``--reject-threshold`` on a loaded model's test; a model without one (trained before
    "not recognised" existed) keeps working, with a warning."""
    stage = pipeline_novelty(model)
    if stage is None:
        if reject_threshold is not None:
            raise InputError(
                f"--reject-threshold needs a model with an out-of-distribution test; {model_dir} has none "
                "(it was trained before 'not recognised' existed). Retrain it with 'deepframes train'."
            )
        logger.warning("%s has no out-of-distribution test (trained before 'not recognised' existed): every photo "
                       "gets a breed, however unlike the training photos. Retrain it with 'deepframes train' to "
                       "answer 'not recognised'.", model_dir)
        return
    if reject_threshold is not None:
        stage.setRejectThreshold(check_threshold(reject_threshold))


__all__ = ["check_threshold", "fit_novelty", "guard_model", "novelty_rates"]
