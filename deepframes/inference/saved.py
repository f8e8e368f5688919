"""Saved image pipelines read without Spark: the files ``PipelineModel.save`` writes (JSON
metadata, Parquet data) read with the standard library and PyArrow.

A model folder written by ``deepframes train`` holds an ``ImageFeaturizer``, a ``NoveltyModel``, a
``StringIndexerModel``, an MLlib classifier and an ``IndexToString``. MLlib's classifiers live in
the JVM, so ``PipelineModel.load`` needs a Spark session (several seconds from a cold process);
their fitted numbers are plain Parquet, which is all the pipeline interpreter (``pipeline.py``)
needs. ``read_saved_pipeline`` gives what it compiles, so ``predict`` of a few photos and the web
service answer in-process with no JVM, with the answers the Spark path gives.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .heads import Classifier, Head, LinearHead, MLPHead
from .images import ImageFeaturizer
from .novelty_stage import NoveltyModel

_OURS = {"deepframes.inference.images.ImageFeaturizer": ImageFeaturizer,
         "deepframes.inference.novelty_stage.NoveltyModel": NoveltyModel}
_MLLIB = "org.apache.spark.ml."
_CLASSIFIERS = {_MLLIB + "classification." + name for name in
                ("LogisticRegressionModel", "LinearSVCModel", "MultilayerPerceptronClassificationModel")}


class NeedsSpark(Exception):
    """The saved pipeline holds a stage that only Spark can read (the caller loads it with Spark)."""


@dataclass
class SavedPipeline:
    """A fitted image pipeline as read from its folder: the featurizer, the out-of-distribution
    test (None: the pipeline has none) and the classifier with its labels."""

    featurizer: ImageFeaturizer
    novelty: NoveltyModel | None
    classifier: Classifier

    @property
    def labels(self) -> list[str]:
        return list(self.classifier.labels)


def read_saved_pipeline(folder: str | Path) -> SavedPipeline:
    """The image pipeline saved in a local ``folder``, read without Spark.

    Raises
    ------
    NeedsSpark
        When a stage is not one of ``ImageFeaturizer``, ``NoveltyModel``, ``StringIndexerModel``,
        ``LogisticRegressionModel``, ``LinearSVCModel``, ``MultilayerPerceptronClassificationModel``
        and ``IndexToString``, or the files are not in the layout this Spark version writes.

    Examples
    --------
    >>> import deepframes, tempfile
    >>> from deepframes.apps.train import train_classifier
    >>> spark = deepframes.session("local[2]")
    >>> folder = tempfile.mkdtemp() + "/model"
    >>> _ = train_classifier("../shared/data/pets/images/[AB]*_1?.jpg", folder,
    ...     weights="../shared/models/squeezenet1.1.onnx", spark=spark)
    >>> read_saved_pipeline(folder).labels
    ['Abyssinian', 'Bengal']
    """
    folder = Path(folder)
    try:
        uids = _metadata(folder)["paramMap"]["stageUids"]
        stages = [_stage(folder / "stages" / f"{index}_{uid}") for index, uid in enumerate(uids)]
    except (OSError, KeyError, ValueError, IndexError, TypeError) as error:
        raise NeedsSpark(f"{folder} is not in the layout read without Spark ({error})") from None
    featurizers = [stage for stage in stages if isinstance(stage, ImageFeaturizer)]
    novelty = [stage for stage in stages if isinstance(stage, NoveltyModel)]
    classifiers = [stage for stage in stages if isinstance(stage, _SavedClassifier)]
    if len(featurizers) != 1 or len(classifiers) != 1 or len(novelty) > 1:
        raise NeedsSpark(f"{folder} is not an image pipeline of one featurizer and one classifier")
    featurizer, (classifier,) = featurizers[0], classifiers
    if classifier.features_col != featurizer.getOutputCol():
        raise NeedsSpark(f"{folder}'s classifier reads {classifier.features_col!r}, not the featurizer's output")
    labels = _labels(stages, classifier)
    return SavedPipeline(featurizer, novelty[0] if novelty else None, Classifier(classifier.head, labels))


@dataclass
class _SavedClassifier:
    head: Head
    features_col: str
    label_col: str
    num_classes: int


@dataclass
class _SavedIndexer:
    output_col: str
    labels: tuple[str, ...]


@dataclass
class _SavedIndexToString:
    labels: tuple[str, ...]


def _labels(stages: list, classifier: _SavedClassifier) -> tuple[str, ...]:
    """As the pipeline interpreter names classes: the indexer of the classifier's label column,
    else an IndexToString's labels, else MLlib's indices (``"0.0"``, ``"1.0"``...)."""
    for stage in stages:
        if isinstance(stage, _SavedIndexer) and stage.output_col == classifier.label_col:
            return stage.labels
        if isinstance(stage, _SavedIndexToString) and stage.labels:
            return stage.labels
    return tuple(str(float(index)) for index in range(classifier.num_classes))


def _metadata(folder: Path) -> dict:
    parts = sorted(path for path in (folder / "metadata").iterdir() if path.name.startswith("part-"))
    return json.loads(parts[0].read_text().splitlines()[0])


def _data(folder: Path) -> dict:
    import pyarrow.parquet as pq

    rows = pq.read_table(folder / "data").to_pylist()
    if len(rows) != 1:
        raise ValueError(f"expected one row of model data, found {len(rows)}")
    return rows[0]


def _params(metadata: dict) -> dict:
    return {**metadata.get("defaultParamMap", {}), **metadata.get("paramMap", {})}


def _stage(folder: Path):
    metadata = _metadata(folder)
    name, params = metadata["class"], _params(metadata)
    if name in _OURS:
        return _our_stage(_OURS[name], folder, metadata)
    if name == _MLLIB + "feature.StringIndexerModel":
        data = _data(folder)
        labels = data["labelsArray"][0] if "labelsArray" in data else data["labels"]
        return _SavedIndexer(params["outputCol"], tuple(labels))
    if name == _MLLIB + "feature.IndexToString":
        return _SavedIndexToString(tuple(params.get("labels") or ()))
    if name in _CLASSIFIERS:
        head, num_classes = _head(name.rsplit(".", 1)[1], _data(folder), params)
        return _SavedClassifier(head, params["featuresCol"], params["labelCol"], num_classes)
    raise NeedsSpark(f"stage {name} is read by Spark only")


def _our_stage(cls, folder: Path, metadata: dict):
    """One of deepframes' stages, as ``ModelFileReader`` loads it, its files from the folder."""
    stage = cls()
    stage._resetUid(metadata["uid"])
    for key, value in _params(metadata).items():
        if stage.hasParam(key):
            stage._set(**{key: value})
    for name, base in (metadata.get("files") or {}).items():
        stage._set(**{name: str(folder / "files" / name / base)})
    return stage


def read_saved_stage(folder: str | Path, cls: type):
    """One of deepframes' stages saved alone (``stage.save(folder)``, a local folder), read without
    Spark, its files where the save put them."""
    folder = Path(folder)
    return _our_stage(cls, folder, _metadata(folder))


def _head(kind: str, data: dict, params: dict) -> tuple[Head, int]:
    if kind == "LogisticRegressionModel":
        coefficients = _matrix(data["coefficientMatrix"])
        return LinearHead(coefficients, _vector(data["interceptVector"]), True), int(data["numClasses"])
    if kind == "LinearSVCModel":
        coefficients = _vector(data["coefficients"])[np.newaxis]
        return LinearHead(coefficients, np.array([float(data["intercept"])]), False), 2
    layers = [int(size) for size in params["layers"]]
    return MLPHead.from_flat(layers, _vector(data["weights"])), layers[-1]


def _vector(value: dict) -> np.ndarray:
    """An MLlib vector as Spark stores it (type 0 sparse, 1 dense)."""
    if value["type"] == 1:
        return np.asarray(value["values"], dtype=np.float64)
    dense = np.zeros(int(value["size"]), dtype=np.float64)
    dense[np.asarray(value["indices"], dtype=np.int64)] = value["values"]
    return dense


def _matrix(value: dict) -> np.ndarray:
    """An MLlib matrix as Spark stores it: column-major values (row-major when transposed), or
    compressed sparse columns (rows when transposed)."""
    rows, columns = int(value["numRows"]), int(value["numCols"])
    values = np.asarray(value["values"], dtype=np.float64)
    if value["type"] == 1:
        return values.reshape(rows, columns) if value["isTransposed"] else values.reshape(columns, rows).T
    outer, inner = (rows, columns) if value["isTransposed"] else (columns, rows)
    dense = np.zeros((outer, inner), dtype=np.float64)
    pointers, indices = value["colPtrs"], value["rowIndices"]
    for major in range(outer):
        for position in range(pointers[major], pointers[major + 1]):
            dense[major, indices[position]] = values[position]
    return dense if value["isTransposed"] else dense.T


__all__ = ["NeedsSpark", "SavedPipeline", "read_saved_pipeline", "read_saved_stage"]
