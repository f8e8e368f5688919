"""Near-duplicate photos in a collection: found from their features, listed with thumbnails.

Used by ``deepframes duplicates`` (groups of near-duplicates in a folder of photos or a features
folder) and by ``deepframes study`` (pairs that a train/test split can put on both sides, which
inflates every accuracy in the report; ``--drop-duplicates`` keeps one photo of each group).
The search is ``similarity.near_duplicates`` (an exact self-join on the executors); the
thumbnails are made on the executors too, so the photos may live on any Hadoop file system.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from .. import storage
from ..images.thumbnails import thumbnails
from ..similarity.duplicates import DEFAULT_THRESHOLD, check_threshold, duplicate_groups, near_duplicates
from .errors import InputError
from .featurize import encoded_images, features_frame
from .outputs import check_output, staged_output
from .report import write_csv
from .train import is_features_file, resolve_featurizer

PAIR_COLUMNS = ("path_1", "label_1", "path_2", "label_2", "similarity")


def counted(number: int, noun: str) -> str:
    """``number`` and ``noun``, plural when it is not 1.

    >>> counted(1, "pair"), counted(3, "photo")
    ('1 pair', '3 photos')
    """
    return f"{number} {noun}" + ("" if number == 1 else "s")


@dataclass(frozen=True)
class DuplicatePair:
    """Two photos whose features' cosine similarity is at least the threshold."""

    path_1: str
    path_2: str
    similarity: float
    label_1: str | None = None
    label_2: str | None = None

    @property
    def same_label(self) -> bool:
        return self.label_1 == self.label_2

    def as_dict(self) -> dict:
        return {"path_1": self.path_1, "label_1": self.label_1, "path_2": self.path_2, "label_2": self.label_2,
                "similarity": round(self.similarity, 4)}


def check_duplicates_threshold(threshold: float) -> None:
    """``check_threshold`` in the words of the command line."""
    try:
        check_threshold(threshold)
    except ValueError:
        raise InputError(f"--duplicates-threshold must be a cosine similarity in (0, 1], such as "
                         f"{DEFAULT_THRESHOLD}; got {threshold}.") from None


def find_duplicates(frame: DataFrame, threshold: float = DEFAULT_THRESHOLD) -> list[DuplicatePair]:
    """The near-duplicate pairs among ``frame``'s rows (``path``, ``features`` and optionally
    ``label``), most similar first."""
    if "path" not in frame.columns:
        raise InputError(f"Looking for near-duplicates needs the photos' paths; the features have no 'path' column "
                         f"(columns: {frame.columns}). Featurize with 'deepframes featurize'.")
    rows = frame.where(F.col("features").isNotNull())
    pairs = near_duplicates(rows.select("path", "features"), threshold, idCol="path").collect()
    labels = {}
    if "label" in frame.columns and pairs:
        involved = sorted({row.id_1 for row in pairs} | {row.id_2 for row in pairs})
        labels = {row.path: row.label for row in rows.where(F.col("path").isin(involved)).select("path", "label").collect()}
    return [DuplicatePair(row.id_1, row.id_2, float(row.similarity), labels.get(row.id_1), labels.get(row.id_2))
            for row in pairs]


def kept_and_dropped(pairs: list[DuplicatePair]) -> tuple[list[list[str]], list[str]]:
    """The groups the pairs form, and the paths to drop to keep one photo (the first path) of each.

    >>> kept_and_dropped([DuplicatePair("b", "c", 0.99), DuplicatePair("a", "b", 0.97)])
    ([['a', 'b', 'c']], ['b', 'c'])
    """
    groups = duplicate_groups((pair.path_1, pair.path_2) for pair in pairs)
    return groups, [path for group in groups for path in group[1:]]


def write_duplicates_report(folder: Path, pairs: list[DuplicatePair], threshold: float, spark: SparkSession,
                            dropped: list[str] | None = None, heading: str | None = "##") -> list[str]:
    """Write ``duplicates.csv`` and ``duplicates/<n>.jpg`` thumbnails into ``folder``; return the
    report's Markdown lines (a table of the pairs with their thumbnails, most similar first)."""
    write_csv(folder / "duplicates.csv", [pair.as_dict() for pair in pairs], PAIR_COLUMNS)
    across = sum(not pair.same_label for pair in pairs)
    lines = [f"{heading} Near-duplicate photos", ""] if heading else []
    if not pairs:
        return lines + [f"No two photos have features with a cosine similarity of {threshold:g} or more.", ""]
    lines += [
        (f"{counted(len(pairs), 'pair')} of photos with features of a cosine similarity of {threshold:g} or more "
         f"(the same photo resized, recompressed or lightly cropped; `duplicates.csv`)"
         + (f", {across} of them with different labels (a labelling question)." if across else ".")),
        ("A pair within one class can land on both sides of a train/test split, which inflates its accuracy. "
         + (f"{counted(len(dropped), 'photo')} left out before training, keeping one of each group."
            if dropped is not None else "Run with `--drop-duplicates` to keep one photo of each group.")),
        "",
    ]
    small = thumbnails([path for pair in pairs for path in (pair.path_1, pair.path_2)], spark)
    (folder / "duplicates").mkdir(exist_ok=True)
    rows = []
    for number, pair in enumerate(pairs, 1):
        cells = []
        for side, (path, label) in enumerate(((pair.path_1, pair.label_1), (pair.path_2, pair.label_2)), 1):
            name = f"duplicates/{number:04d}-{side}.jpg"
            if path in small:
                (folder / name).write_bytes(small[path])
            picture = f"![{os.path.basename(path)}]({name}) " if path in small else ""
            cells.append(f"{picture}`{os.path.basename(path)}`" + (f" ({label})" if label is not None else ""))
        rows.append((f"{pair.similarity:.4f}", *cells))
    header = ["similarity", "photo", "near-duplicate"]
    lines += ["| " + " | ".join(header) + " |", "|---|---|---|"] + ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


@dataclass
class DuplicatesResult:
    """What ``find_duplicate_photos`` found: groups of near-duplicate paths, largest first."""

    source: str
    threshold: float
    num_photos: int
    groups: list[list[str]]
    pairs: list[DuplicatePair] = field(default_factory=list)
    seconds: float = 0.0
    out: str | None = None

    def as_dict(self) -> dict:
        return {"source": self.source, "threshold": self.threshold, "num_photos": self.num_photos,
                "num_groups": len(self.groups), "num_duplicates": sum(len(group) - 1 for group in self.groups),
                "groups": self.groups, "pairs": [pair.as_dict() for pair in self.pairs],
                "seconds": round(self.seconds, 2), "out": self.out}

    def describe(self) -> str:
        if not self.groups:
            return f"No near-duplicates among {self.num_photos} photos (cosine similarity >= {self.threshold:g})."
        lines = [f"{counted(len(self.groups), 'group')} of near-duplicates among {counted(self.num_photos, 'photo')} "
                 f"(cosine similarity >= {self.threshold:g}):"]
        for number, group in enumerate(self.groups, 1):
            lines.append(f"group {number}: " + "  ".join(_shown(path) for path in group))
        return "\n".join(lines)


def find_duplicate_photos(source: str, *, threshold: float = DEFAULT_THRESHOLD, model: str | None = None,
                          weights: str | None = None, out: str | None = None,
                          spark: SparkSession) -> DuplicatesResult:
    """Groups of near-duplicate photos in ``source``: photos (a folder, a glob, any Hadoop URI),
    featurized with ``model``/``weights`` (default ``squeezenet1.1``), or a features folder written
    by ``deepframes featurize``. With ``out``, a report folder (``report.md`` with thumbnails,
    ``duplicates.csv``) is written too.

    Examples
    --------
    >>> import deepframes, tempfile
    >>> spark = deepframes.session("local[2]")
    >>> result = find_duplicate_photos("../shared/data/pets/images/Abyssinian_1[27]?.jpg",
    ...     weights="../shared/models/squeezenet1.1.onnx", spark=spark)
    >>> [[path.rsplit("/", 1)[1] for path in group] for group in result.groups]
    [['Abyssinian_122.jpg', 'Abyssinian_172.jpg']]
    """
    started = time.perf_counter()
    check_duplicates_threshold(threshold)
    if out is not None:
        check_output(out, spark)
    if is_features_file(source, spark):
        frame = features_frame(source, spark, labelled=False)
    else:
        featurizer = resolve_featurizer(source, model, weights, spark)
        files, _ = encoded_images(source, None, spark)
        features = featurizer.stage(input_col="content").transform(files)
        frame = features.where(F.col("features").isNotNull()).select("path", "features")
    frame = frame.cache()
    try:
        num_photos = frame.count()
        pairs = find_duplicates(frame, threshold)
    finally:
        frame.unpersist()
    groups, _ = kept_and_dropped(pairs)
    result = DuplicatesResult(source, threshold, num_photos, groups, pairs)
    if out is not None:
        with staged_output(out, spark) as staging:
            lines = ["# Near-duplicate photos", "", f"{num_photos} photos from `{source}`.", ""]
            lines += write_duplicates_report(staging.folder, pairs, threshold, spark, heading=None)
            (staging.folder / "report.md").write_text("\n".join(lines), encoding="utf-8")
        result.out = out
    result.seconds = time.perf_counter() - started
    return result


def _shown(path: str) -> str:
    """A path as a person reads it: a local file without its ``file:`` scheme."""
    return storage.local_path(path) if storage.is_local(path) else path


__all__ = ["DuplicatePair", "DuplicatesResult", "find_duplicate_photos", "find_duplicates", "kept_and_dropped",
           "write_duplicates_report"]
