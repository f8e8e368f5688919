"""The breed study: binary classifiers for every pair of classes (or each class against the rest)
over a range of train/test splits, trained in parallel in Spark tasks, the best model kept per pair.

The feature matrix is sent to the executors once, as a file (``SparkContext.addFile``, or an
artifact on Spark Connect); each Spark task trains every split of a few pairs with scikit-learn
and sends back the result rows, the best model (pickled) and the pair's plot. Several small jobs
run at once from a thread pool, so results (and progress lines) arrive pair by pair while every
core stays busy. Only DataFrame operations are used, so the study runs on a Connect session too.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import os
import pickle
import re
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession

from .._scratch import scratch_folder
from ..core.files import ship_file, shipped_path
from ..inference.heads import Classifier, LinearHead
from ..session import default_parallelism, is_connect
from ..similarity.duplicates import DEFAULT_THRESHOLD
from .duplicates import (DuplicatePair, check_duplicates_threshold, counted, find_duplicates, kept_and_dropped,
                         write_duplicates_report)
from .errors import InputError, check_classes
from .featurize import Features, features_frame, load_features, output_name
from .outputs import check_output, staged_output
from .report import RESULT_COLUMNS, plot_pair, write_study_report

logger = logging.getLogger(__name__)

PAIR_MODES = ("one-vs-one", "one-vs-rest")
CLASSIFIERS = ("svm", "logreg")
REST = "rest"


def parse_splits(text: str) -> tuple[float, ...]:
    """Train fractions from ``start:stop:step`` (inclusive) or a comma list; each must lie in (0, 1).

    >>> parse_splits("0.1:0.9:0.1")
    (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    >>> parse_splits("0.5,0.8")
    (0.5, 0.8)
    """
    try:
        if ":" in text:
            start, stop, step = (float(part) for part in text.split(":"))
            if step <= 0:
                raise ValueError
            count = math.floor((stop - start) / step + 1e-9) + 1
            splits = tuple(round(start + step * index, 6) for index in range(max(count, 0)))
        else:
            splits = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise InputError(
            f"--splits expects START:STOP:STEP such as 0.1:0.9:0.1 or a list such as 0.5,0.8; got {text!r}."
        ) from None
    outside = [split for split in splits if not 0 < split < 1]
    if not splits or outside:
        raise InputError(
            f"--splits: every train fraction must lie strictly between 0 and 1; got {outside or text!r}. "
            "Example: --splits 0.1:0.9:0.1"
        )
    return splits


@dataclass(frozen=True)
class StudyConfig:
    """What each Spark task needs besides the data (shipped with the task)."""

    classifier: str
    iterations: int
    seed: int
    splits: tuple[float, ...]


@dataclass(frozen=True)
class PairTask:
    index: int
    class_1: str
    class_2: str  # REST for one-vs-rest
    code_1: int
    code_2: int  # -1 for the rest


@dataclass
class PairOutcome:
    """One pair's result rows, its best model (pickled) and its plot (PNG bytes)."""

    task: PairTask
    rows: list[dict]
    model: bytes
    plot: bytes


def make_pairs(classes: list[str], mode: str, selected: list[str] | None = None) -> list[PairTask]:
    """Pairs of classes to study: every unordered pair, or each class against the rest.

    >>> [(p.class_1, p.class_2) for p in make_pairs(["a", "b", "c"], "one-vs-one")]
    [('a', 'b'), ('a', 'c'), ('b', 'c')]
    >>> [(p.class_1, p.class_2) for p in make_pairs(["a", "b", "c"], "one-vs-rest", ["b"])]
    [('b', 'rest')]
    """
    if mode not in PAIR_MODES:
        raise InputError(f"--pairs must be one of {', '.join(PAIR_MODES)}; got {mode!r}.")
    codes = {name: code for code, name in enumerate(classes)}
    unknown = [name for name in selected or [] if name not in codes]
    if unknown:
        raise InputError(f"--classes: unknown class {unknown[0]!r}; the features have {classes}.")
    chosen = list(dict.fromkeys(selected)) if selected else classes
    if mode == "one-vs-one":
        if len(chosen) < 2:
            raise InputError(f"--classes: one-vs-one needs at least 2 classes; got {chosen}.")
        combos = itertools.combinations(chosen, 2)
        return [PairTask(i, a, b, codes[a], codes[b]) for i, (a, b) in enumerate(combos)]
    return [PairTask(i, name, REST, codes[name], -1) for i, name in enumerate(chosen)]


def _fit(config: StudyConfig, features: np.ndarray, gram: np.ndarray | None, targets: np.ndarray,
         train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Fit on the train rows; return (weights, intercept, test decisions) on standardized features.

    The SVM is solved in its dual on the pair's Gram matrix (computed once for all splits): with
    fewer rows than features this is the same linear SVM (hinge loss, C=1) as a primal solver's,
    at a fraction of the cost. One iteration is one pass of SMO steps over the training rows.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    if config.classifier == "svm":
        model = SVC(kernel="precomputed", C=1.0, max_iter=config.iterations * len(train))
        model.fit(gram[np.ix_(train, train)], targets[train])
        weights = model.dual_coef_[0] @ features[train][model.support_]
        return weights, float(model.intercept_[0]), model.decision_function(gram[np.ix_(test, train)])
    model = LogisticRegression(max_iter=config.iterations)
    model.fit(features[train], targets[train])
    return model.coef_[0], float(model.intercept_[0]), model.decision_function(features[test])


def _split(targets: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/test row indices; each class keeps at least one row on each side."""
    train, test = [], []
    for value in (0, 1):
        rows = rng.permutation(np.flatnonzero(targets == value))
        cut = min(max(round(fraction * len(rows)), 1), len(rows) - 1)
        train.append(rows[:cut])
        test.append(rows[cut:])
    return np.concatenate(train), np.concatenate(test)


def train_pair(task: PairTask, config: StudyConfig, data: StudyData) -> PairOutcome:
    """Train and score one pair at every split; keep the most accurate model. Runs in a Spark task."""
    from sklearn.exceptions import ConvergenceWarning

    codes = data.codes
    rows_of_pair = np.flatnonzero((codes == task.code_1) | (codes == task.code_2)) if task.code_2 >= 0 \
        else np.arange(len(codes))
    features, targets = data.matrix[rows_of_pair], (codes[rows_of_pair] == task.code_1).astype(np.int8)
    gram = (features @ features.T).astype(np.float64) if config.classifier == "svm" else None
    rng = np.random.default_rng([config.seed, task.code_1, task.code_2 + 1])
    rows, best, best_accuracy = [], None, -1.0
    for model_no, fraction in enumerate(config.splits):
        train, test = _split(targets, fraction, rng)
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # --iterations caps the work on purpose
            weights, intercept, decisions = _fit(config, features, gram, targets, train, test)
        n_correct = int(((decisions > 0) == (targets[test] == 1)).sum())
        accuracy = n_correct / len(test)
        rows.append({
            "class_1": task.class_1, "class_2": task.class_2, "split": fraction,
            "iterations": config.iterations, "model_no": model_no, "accuracy": accuracy,
            "n_train": len(train), "n_test": len(test), "n_correct": n_correct,
            "seconds": time.perf_counter() - started,
        })
        if accuracy > best_accuracy:
            best, best_accuracy = (weights, intercept, fraction, model_no), accuracy
    weights, intercept, fraction, model_no = best
    # Fold the standardization into the weights, so the model takes raw features.
    coef = weights / data.scale
    head = LinearHead(coef[np.newaxis], np.array([intercept - float(data.mean @ coef)]),
                      probabilistic=config.classifier != "svm")
    model = Classifier(head, (task.class_2, task.class_1))  # positive margin: class_1
    saved = {"model": model, "classes": (task.class_1, task.class_2), "positive": task.class_1,
             "split": fraction, "model_no": model_no, "accuracy": best_accuracy, "config": config}
    return PairOutcome(task, rows, pickle.dumps(saved), plot_pair(rows, task.class_1, task.class_2))


@dataclass
class StudyData:
    """What every task reads (sent once, as a file): standardized features, class codes, the scaling."""

    matrix: np.ndarray  # (rows, features) float32, standardized over all rows
    codes: np.ndarray
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def standardize(cls, matrix: np.ndarray, codes: np.ndarray) -> StudyData:
        mean = matrix.mean(axis=0, dtype=np.float64)
        scale = matrix.std(axis=0, dtype=np.float64)
        scale[scale == 0] = 1.0
        standardized = ((matrix - mean) / scale).astype(np.float32)
        return cls(standardized, codes, mean, scale)

    def save(self) -> StudyDataFile:
        """Write the arrays to a file of this process's scratch folder (removed when it exits),
        one per content: Spark ships a file name once per session, so the same data keeps its path."""
        digest = hashlib.sha256()
        for array in (self.matrix, self.codes, self.mean, self.scale):
            digest.update(np.ascontiguousarray(array).tobytes())
        key = digest.hexdigest()
        if key not in _SAVED:
            path = os.path.join(scratch_folder(), f"study-{key[:16]}.npz")
            np.savez(path, matrix=self.matrix, codes=self.codes, mean=self.mean, scale=self.scale)
            _SAVED[key] = path
        return StudyDataFile(_SAVED[key], key)


@dataclass(frozen=True)
class StudyDataFile:
    """``StudyData`` as a file sent to the executors: shipped with the tasks instead of the arrays."""

    path: str  # on the driver
    digest: str
    shipped_name: str | None = None

    def ship(self, spark: SparkSession) -> StudyDataFile:
        return StudyDataFile(self.path, self.digest, ship_file(spark, self.path))

    def load(self) -> StudyData:
        """The arrays, read at most once per Python worker."""
        if _LOADED[0] != self.digest:
            path = shipped_path(self.shipped_name, self.path) if self.shipped_name else self.path
            with np.load(path) as arrays:
                _LOADED[:] = [self.digest, StudyData(arrays["matrix"], arrays["codes"], arrays["mean"], arrays["scale"])]
        return _LOADED[1]


# digest -> its file, on the driver; (digest, StudyData) of the last study a Python worker read.
_SAVED: dict[str, str] = {}
_LOADED: list = [None, None]
_TASK_SCHEMA = "task binary"
_OUTCOME_SCHEMA = "outcome binary"


def train_pairs(batches: Iterable[pa.RecordBatch], config: StudyConfig, data: StudyDataFile) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` function: a Spark partition of pickled pairs in, their pickled outcomes out."""
    from threadpoolctl import threadpool_limits

    study = data.load()
    # One BLAS thread per task: Spark already runs one task per core.
    with threadpool_limits(limits=1):
        for batch in batches:
            for task in batch.column(0).to_pylist():
                outcome = train_pair(pickle.loads(task), config, study)
                yield pa.RecordBatch.from_arrays([pa.array([pickle.dumps(outcome)], pa.binary())],
                                                 names=["outcome"])


@dataclass
class StudyResult:
    """What ``run_study`` wrote and how long it took."""

    out: str
    num_pairs: int
    num_trainings: int
    seconds: float
    best: list[dict] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)  # near-duplicate pairs of photos (DuplicatePair.as_dict)
    num_dropped: int = 0  # photos left out by drop_duplicates

    def as_dict(self) -> dict:
        return {"out": self.out, "num_pairs": self.num_pairs, "num_trainings": self.num_trainings,
                "seconds": round(self.seconds, 2),
                "trainings_per_second": round(self.num_trainings / max(self.seconds, 1e-9), 1),
                "best": self.best, "duplicates": self.duplicates, "num_dropped": self.num_dropped}


def safe_name(text: str) -> str:
    """A file-name-safe version of a class name.

    >>> safe_name("american bulldog/x")
    'american_bulldog_x'
    """
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def _chunks(tasks: list[PairTask], parallelism: int) -> list[list[PairTask]]:
    count = min(len(tasks), max(parallelism * 32, 64))  # small jobs: results stream back pair by pair
    return [tasks[start::count] for start in range(count)]


def _pairs_job(spark: SparkSession, chunk: list[PairTask], config: StudyConfig, data: StudyDataFile) -> DataFrame:
    """One task training ``chunk``'s pairs."""
    tasks = spark.createDataFrame([(pickle.dumps(task),) for task in chunk], _TASK_SCHEMA).coalesce(1)
    return tasks.mapInArrow(partial(train_pairs, config=config, data=data), _OUTCOME_SCHEMA)


def _run_jobs(spark: SparkSession, tasks: list[PairTask], config: StudyConfig, data: StudyDataFile,
              on_pair: Callable[[PairOutcome], None]) -> None:
    """One small job per chunk of pairs, several at a time, so results stream back pair by pair."""
    parallelism = default_parallelism(spark)
    data = data.ship(spark)

    def run(chunk: list[PairTask]) -> list[PairOutcome]:
        if not is_connect(spark):  # a Connect session has no SparkContext to describe jobs with
            spark.sparkContext.setJobDescription(f"deepframes study: {len(chunk)} pairs")
        return [pickle.loads(row.outcome) for row in _pairs_job(spark, chunk, config, data).collect()]

    with ThreadPoolExecutor(max_workers=parallelism + 1) as pool:
        futures = [pool.submit(run, chunk) for chunk in _chunks(tasks, parallelism)]
        for future in as_completed(futures):
            for outcome in future.result():
                on_pair(outcome)


def run_study(
    features: str | Path,
    out: str | Path,
    *,
    pairs: str = "one-vs-one",
    classes: list[str] | None = None,
    splits: tuple[float, ...] = parse_splits("0.1:0.9:0.1"),
    iterations: int = 100,
    classifier: str = "svm",
    seed: int = 0,
    duplicates_threshold: float | None = DEFAULT_THRESHOLD,
    drop_duplicates: bool = False,
    spark: SparkSession,
    progress: Callable[[str], None] | None = None,
) -> StudyResult:
    """Run the study on a features file and write the report folder ``out``.

    ``out`` gets ``results.csv``, ``report.md``, ``study.log``, ``plots/<pair>.png``,
    ``plots/overview.png`` and ``models/<pair>.pkl`` (a dict with the ``Classifier``, a
    ``LinearHead`` with its labels, the classes and the split it was best at), all at once when
    the study is done.

    Photos whose features are near-duplicates (cosine similarity of at least
    ``duplicates_threshold``; None: not looked for) are listed in the report with thumbnails
    (``duplicates.csv``, ``duplicates/``): a split can put one on each side and inflate its
    accuracy. With ``drop_duplicates``, one photo of each group is kept and the others left out.

    Examples
    --------
    >>> import deepframes, tempfile
    >>> spark = deepframes.session("local[2]")
    >>> folder = tempfile.mkdtemp()
    >>> from deepframes.apps.featurize import featurize_images
    >>> _ = featurize_images("../shared/data/pets/images/[AB]*_1?.jpg", folder + "/f",
    ...     weights="../shared/models/squeezenet1.1.onnx", spark=spark)
    >>> run_study(folder + "/f", folder + "/report", splits=(0.5,), spark=spark).num_trainings
    1
    """
    started = time.perf_counter()
    if classifier not in CLASSIFIERS:
        raise InputError(f"--classifier must be one of {', '.join(CLASSIFIERS)}; got {classifier!r}.")
    if iterations < 1:
        raise InputError(f"--iterations must be a positive integer; got {iterations}.")
    if duplicates_threshold is not None:
        check_duplicates_threshold(duplicates_threshold)
    check_output(out, spark)  # before any work: a URI whose file system is missing, a folder not ours
    loaded = load_features(features, spark)
    duplicates, dropped = _duplicates(features, loaded, duplicates_threshold, drop_duplicates, spark, progress)
    if dropped:
        keep = ~np.isin(loaded.paths, dropped)
        loaded = replace(loaded, matrix=loaded.matrix[keep], labels=loaded.labels[keep], paths=loaded.paths[keep])
    counts = loaded.class_counts()
    check_classes(counts, str(features))
    names = sorted(counts)
    tasks = make_pairs(names, pairs, classes)
    config = StudyConfig(classifier, iterations, seed, tuple(splits))
    codes = np.searchsorted(np.asarray(names, dtype=object), loaded.labels).astype(np.int32)
    # Standardized once over all rows (no labels involved), as the scaler of every training.
    data = StudyData.standardize(loaded.matrix, codes).save()
    outcomes: list[PairOutcome] = []
    log_lines: list[str] = []

    def on_pair(outcome: PairOutcome) -> None:
        outcomes.append(outcome)
        task = outcome.task
        for row in outcome.rows:
            line = (f"{task.class_1} vs {task.class_2} split {row['split']:.2f}: accuracy {row['accuracy']:.3f} "
                    f"({row['n_correct']}/{row['n_test']}, trained on {row['n_train']}, {row['seconds']:.3f} s)")
            log_lines.append(line)
            logger.info(line)
        best = max(outcome.rows, key=lambda row: row["accuracy"])
        line = (f"pair {len(outcomes)}/{len(tasks)} {task.class_1} vs {task.class_2}: best {best['accuracy']:.3f} "
                f"at split {best['split']:.2f}")
        log_lines.append(line)
        if progress:
            progress(line)

    with staged_output(out, spark) as staging:
        _run_jobs(spark, tasks, config, data, on_pair)
        outcomes.sort(key=lambda outcome: outcome.task.index)
        extra = [] if duplicates is None else write_duplicates_report(
            staging.folder, duplicates, duplicates_threshold, spark, dropped if drop_duplicates else None)
        best = write_study_report(staging.folder, outcomes, config, pairs, safe_name, extra)
        (staging.folder / "study.log").write_text("\n".join(log_lines) + "\n")
    return StudyResult(output_name(out), len(tasks), len(tasks) * len(splits),
                       time.perf_counter() - started, best,
                       [pair.as_dict() for pair in duplicates or []], len(dropped))


def _duplicates(features: str | Path, loaded: Features, threshold: float | None, drop: bool, spark: SparkSession,
                progress: Callable[[str], None] | None) -> tuple[list[DuplicatePair] | None, list[str]]:
    """The near-duplicate pairs of the features file (None: not looked for, or it has no paths),
    and the paths to leave out (``drop``: all but one photo of each group)."""
    if threshold is None or not any(path is not None for path in loaded.paths):
        if drop:
            raise InputError(f"--drop-duplicates needs the photos' paths and a --duplicates-threshold; {features} "
                             "has no 'path' column." if threshold is not None else
                             "--drop-duplicates needs a --duplicates-threshold.")
        return None, []
    pairs = find_duplicates(features_frame(features, spark), threshold)
    groups, dropped = kept_and_dropped(pairs)
    if progress:
        progress(f"near-duplicates: {counted(len(pairs), 'pair')} in {counted(len(groups), 'group')} (cosine "
                 f"similarity >= {threshold:g})" + (f"; leaving out {counted(len(dropped), 'photo')}" if drop else ""))
    return pairs, dropped if drop else []


__all__ = ["RESULT_COLUMNS", "StudyConfig", "StudyResult", "make_pairs", "parse_splits", "run_study"]


