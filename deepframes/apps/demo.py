"""The demo behind ``make demo``: the whole path on a real dataset that needs no internet.

scikit-learn's handwritten digits (1,797 images of 8x8 pixels, 10 classes) are written as PNG
files, then read, featurized with a small network, used to train and evaluate a classifier that
is saved, queried through Spark SQL, studied pair by pair, and reported with plots.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .. import storage
from ..inference import register_udf
from ..session import session
from .errors import InputError
from .featurize import featurize_images
from .network import INPUT_SIZE, TINY_CNN, write_tiny_cnn
from .outputs import MARKER, check_output
from .study import parse_splits, run_study
from .train import train_classifier

logger = logging.getLogger(__name__)

NUM_SQL_SAMPLES = 8


@dataclass
class DemoResult:
    """Where the demo wrote everything, and what it measured."""

    out: str
    images: str
    num_images: int
    num_classes: int
    network: str
    accuracy: float
    sql_predictions: list[dict]
    files: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    master: str = ""

    def as_dict(self) -> dict:
        result = dict(self.__dict__)
        result["seconds"] = round(self.seconds, 2)
        return result


def write_digits(folder: str | Path, limit: int | None = None) -> int:
    """Write scikit-learn's digits as 32x32 grayscale PNGs, one folder per digit; returns the count.

    >>> import tempfile
    >>> write_digits(tempfile.mkdtemp(), limit=20)
    20
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = Path(folder)
    count = len(digits.images) if limit is None else min(limit, len(digits.images))
    for index in range(count):
        target = root / str(digits.target[index]) / f"digit_{index:04d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        pixels = (digits.images[index] * (255 / 16)).astype(np.uint8)
        Image.fromarray(pixels).resize(INPUT_SIZE[::-1], Image.Resampling.BILINEAR).save(target)
    return count


def _sql_predictions(spark, model_dir: Path, images: Path, label_rule: str) -> list[dict]:
    """Register the saved model as the SQL function ``classify`` and ask it about a few images."""
    from pyspark.ml import PipelineModel
    from pyspark.sql import functions as F

    from ..images import read_images

    model = PipelineModel.load(str(model_dir))
    register_udf(spark, "classify", model)
    sample = read_images(str(images), label=label_rule, spark=spark).where("error IS NULL")
    sample.orderBy(F.rand(seed=1)).limit(NUM_SQL_SAMPLES).createOrReplaceTempView("demo_images")
    rows = spark.sql("SELECT path, label, classify(image) AS predicted FROM demo_images ORDER BY path").collect()
    return [{"path": row.path, "label": row.label, "predicted": row.predicted} for row in rows]


def _write_report(out: Path, result: DemoResult, train_result) -> Path:
    lines = [
        "# deepframes demo", "",
        (f"{result.num_images} images of {result.num_classes} classes from `{result.images}`, featurized with "
        f"`{result.network}`, logistic regression on the features."), "",
        f"Held-out accuracy: **{result.accuracy:.3f}** ({train_result.num_test} images).", "",
        "![Confusion matrix](model/confusion_matrix.png)", "",
        "| class | precision | recall |", "|---|---|---|",
        *[f"| {label} | {p:.3f} | {r:.3f} |" for label, p, r in
          zip(train_result.labels, train_result.precision, train_result.recall)],
        "", "## Predicted through Spark SQL", "",
        ("`SELECT path, label, classify(image) AS predicted FROM demo_images` with the saved model "
        "registered by `deepframes.register_udf`:"), "",
        "| image | label | predicted |", "|---|---|---|",
        *[f"| {Path(row['path']).name} | {row['label']} | {row['predicted']} |" for row in result.sql_predictions],
        "", "## Study: each class against the rest", "",
        "See [study/report.md](study/report.md) and its overview plot:", "",
        "![Accuracy against split](study/plots/overview.png)", "",
    ]
    report = out / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    return report


def run_demo(
    out: str | Path = "deepframes-demo",
    *,
    images: str | None = None,
    label: str = "folder",
    model: str | None = None,
    weights: str | None = None,
    master: str | None = None,
    limit: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the whole path and write everything under ``out``.

    ``out/images`` (the digits, unless ``images`` is given), ``out/network`` (the small network),
    ``out/features`` (Parquet), ``out/model`` (the saved PipelineModel with its confusion matrix),
    ``out/study`` (one class against the rest at three splits) and ``out/report.md``.
    ``progress`` receives one line per step as the demo goes.

    Examples
    --------
    ``limit`` keeps the first digits only (the whole demo takes about a minute):

    >>> import tempfile
    >>> result = run_demo(tempfile.mkdtemp() + "/demo", master="local[2]", limit=100)
    >>> result.num_images, result.num_classes, len(result.sql_predictions)
    (100, 10, 8)
    """
    started = time.perf_counter()
    if not storage.is_local(str(out)):
        raise InputError(
            f"demo --out must be a folder on this machine; received {out}. The demo writes its images and "
            "network there and reads them back. Give a local folder; featurize, train, study and predict "
            "--watch write to any Hadoop URI."
        )
    root = Path(check_output(out))
    if weights is not None and model is None:
        raise InputError("--weights needs --model too (the network the weights belong to).")
    spark = session(master)
    existed = root.exists()
    def step(name: str) -> None:
        line = f"demo: {name} ({time.perf_counter() - started:.1f} s)"
        (progress or logger.info)(line)

    try:
        return _run(root, spark, images, label, model, weights, limit, started, step)
    except BaseException:
        if not existed:  # a failed run leaves no half-written folder behind
            shutil.rmtree(root, ignore_errors=True)
        raise


def _run(root: Path, spark, images, label, model, weights, limit, started, step) -> DemoResult:
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("written by deepframes demo; safe to replace with a new run\n")
    if images is None:
        image_folder = root / "images"
        count = write_digits(image_folder, limit)
        step(f"wrote {count} digit images under {image_folder}")
        label = "folder"
    else:
        image_folder = Path(images).resolve()
    if model is None:
        model, weights = TINY_CNN, str(write_tiny_cnn(root / "network" / f"{TINY_CNN}.onnx"))
    step("featurizing")
    featurized = featurize_images(str(image_folder), root / "features", model=model, weights=weights,
                                  label=label, spark=spark)
    step("training and evaluating")
    trained = train_classifier(str(root / "features"), root / "model", spark=spark)
    step("predicting through Spark SQL")
    predictions = _sql_predictions(spark, root / "model", image_folder, label)
    step("study: each class against the rest")
    run_study(root / "features", root / "study", pairs="one-vs-rest", splits=parse_splits("0.2,0.5,0.8"),
              classifier="logreg", spark=spark)
    result = DemoResult(
        out=str(root), images=str(image_folder), num_images=featurized.num_images,
        num_classes=len(featurized.class_counts), network=model, accuracy=trained.accuracy,
        sql_predictions=predictions, master=spark.sparkContext.master,
    )
    result.files = {
        "images": str(image_folder), "features": str(root / "features"), "model": str(root / "model"),
        "confusion_matrix": str(root / "model" / "confusion_matrix.png"), "study": str(root / "study"),
    }
    result.files["report"] = str(_write_report(root, result, trained))
    result.seconds = time.perf_counter() - started
    return result
