"""The training photos most like a new one: what a field worker checks before trusting an answer.

``deepframes train`` keeps, beside the pipeline, the training split's features as a saved
``VectorIndex`` (``similar/index``) and a small JPEG thumbnail and label of each photo
(``similar/photos.parquet``). The web service and ``deepframes predict`` load them once and
answer each photo with its nearest training photos (cosine distance of the network's features,
the distance the classifier saw), shown beside the breed. A local model folder is read without
Spark; a model on another file system is read through Spark.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from .. import storage
from .._scratch import scratch_folder
from ..images.thumbnails import thumbnails
from ..inference.saved import read_saved_stage
from ..similarity.index import VectorIndex, VectorIndexModel

FOLDER = "similar"
INDEX = "index"
PHOTOS = "photos.parquet"
SHOWN = 3  # training photos shown beside each answer


@dataclass(frozen=True)
class SimilarPhoto:
    """A training photo like the one asked about: its path, label, cosine distance and thumbnail."""

    path: str
    label: str | None
    distance: float
    thumbnail: bytes | None

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def as_dict(self, thumbnail: bool = False) -> dict:
        """For JSON; with ``thumbnail``, the thumbnail as a ``data:`` URI (a page shows it as it is)."""
        answer = {"path": self.path, "name": self.name, "label": self.label, "distance": round(self.distance, 4)}
        if thumbnail:
            answer["thumbnail"] = ("data:image/jpeg;base64," + base64.b64encode(self.thumbnail).decode()
                                   if self.thumbnail else None)
        return answer


def save_similar_photos(train: DataFrame, model_uri: str, spark: SparkSession) -> int:
    """Write ``model_uri/similar``: the index of ``train``'s features (``path``, ``label``,
    ``features``) and the photos' thumbnails and labels. Returns the photos kept."""
    rows = train.where(F.col("features").isNotNull()).select("path", "label", "features")
    index = VectorIndex(idCol="path", metric="cosine", k=SHOWN).fit(rows)
    folder = storage.join(model_uri, FOLDER)
    index.write().save(storage.join(folder, INDEX))  # a fresh folder; overwrite() needs the JVM (no Connect)
    labels = {row.path: row.label for row in rows.select("path", "label").collect()}
    small = thumbnails(list(labels), spark)
    table = pa.table({"path": list(labels), "label": list(labels.values()),
                      "thumbnail": pa.array([small.get(path) for path in labels], pa.binary())})
    local = os.path.join(scratch_folder(), PHOTOS)
    pq.write_table(table, local)
    storage.copy_to(spark, local, storage.join(folder, PHOTOS))
    return len(labels)


class SimilarPhotos:
    """A model folder's training photos, searched in-process.

    Examples
    --------
    >>> import deepframes, tempfile
    >>> from deepframes.apps.train import train_classifier
    >>> spark = deepframes.session("local[2]")
    >>> folder = tempfile.mkdtemp() + "/model"
    >>> _ = train_classifier("../shared/data/pets/images/[AB]*_1?.jpg", folder,
    ...     weights="../shared/models/squeezenet1.1.onnx", spark=spark)
    >>> similar = SimilarPhotos.load(folder)
    >>> features = similar.index._arrays()[0][:1]  # a training photo's own features
    >>> [photo.distance < 1e-6 for photo in similar.nearest(features)[0]][0]
    True
    """

    def __init__(self, index: VectorIndexModel, photos: pa.Table) -> None:
        self.index = index
        paths = photos.column("path").to_pylist()
        self._photos = dict(zip(paths, zip(photos.column("label").to_pylist(), photos.column("thumbnail").to_pylist())))

    @classmethod
    def load(cls, model_dir: str | Path, spark: SparkSession | None = None) -> SimilarPhotos | None:
        """The training photos kept in ``model_dir`` (None when it keeps none: a model trained
        before they were kept, or on features without paths). A local folder is read without Spark."""
        folder = storage.join(str(model_dir), FOLDER)
        if storage.is_local(folder):
            local = Path(storage.local_path(folder))
            if not (local / INDEX).is_dir():
                return None
            return cls(read_saved_stage(local / INDEX, VectorIndexModel), pq.read_table(local / PHOTOS))
        if spark is None or not storage.exists(spark, storage.join(folder, INDEX)):
            return None
        index = VectorIndexModel.load(storage.join(folder, INDEX))
        return cls(index, pq.read_table(storage.local_copy(spark, storage.join(folder, PHOTOS))))

    def nearest(self, features: np.ndarray, k: int = SHOWN) -> list[list[SimilarPhoto]]:
        """The ``k`` training photos nearest each row of ``features``, nearest first."""
        answers = self.index.search(np.atleast_2d(features), k)
        return [[self._photo(path, distance) for path, distance in answer] for answer in answers]

    def attach(self, answers: list) -> None:
        """Set each pipeline ``Answer``'s ``similar`` from its features (answers that have them)."""
        with_features = [answer for answer in answers if answer.features is not None]
        if with_features:
            found = self.nearest(np.stack([answer.features for answer in with_features]))
            for answer, photos in zip(with_features, found):
                answer.similar = photos

    def __len__(self) -> int:
        return len(self._photos)

    def _photo(self, path: str, distance: float) -> SimilarPhoto:
        label, thumbnail = self._photos.get(path, (None, None))
        return SimilarPhoto(path, label, distance, thumbnail)


__all__ = ["SHOWN", "SimilarPhoto", "SimilarPhotos", "save_similar_photos"]
