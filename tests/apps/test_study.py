"""deepframes study on the pets: the acceptance numbers, the report folder, and bad input."""

from __future__ import annotations

import csv
import pickle

import numpy as np
import pytest

from deepframes.apps.study import make_pairs, parse_splits
from tests.apps.helpers import last_json, one_line_error, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pets_study(pets_features, spark_sessions, tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "report"
    from tests.conftest import LOCAL_MASTER

    spark_sessions.get(LOCAL_MASTER)
    from deepframes.cli import main

    assert main(["study", str(pets_features), "--pairs", "one-vs-one", "--out", str(out), "--json"]) == 0
    return out


def _rows(report) -> list[dict]:
    with open(report / "results.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_study_pets_meets_the_accuracy_targets_at_split_08(pets_study):
    at_08 = {(row["class_1"], row["class_2"]): float(row["accuracy"]) for row in _rows(pets_study)
             if float(row["split"]) == 0.8}
    assert at_08[("Abyssinian", "Bengal")] >= 0.85, at_08
    assert at_08[("Abyssinian", "american_bulldog")] >= 0.97, at_08
    assert at_08[("Bengal", "american_bulldog")] >= 0.97, at_08


def test_study_writes_every_training_plots_models_and_report(pets_study):
    rows = _rows(pets_study)
    assert len(rows) == 27 and list(rows[0]) == ["class_1", "class_2", "split", "iterations", "model_no",
                                                 "accuracy", "n_train", "n_test", "n_correct", "seconds"]
    assert all(int(row["n_train"]) + int(row["n_test"]) == 400 for row in rows)
    plots = sorted(p.name for p in (pets_study / "plots").iterdir())
    assert plots == ["Abyssinian__Bengal.png", "Abyssinian__american_bulldog.png", "Bengal__american_bulldog.png",
                     "overview.png"]
    report = (pets_study / "report.md").read_text()
    hardest = report.index("| Abyssinian vs Bengal |")
    assert hardest < report.index("| Abyssinian vs american_bulldog |")  # hardest pair first
    saved = pickle.loads((pets_study / "models" / "Abyssinian__Bengal.pkl").read_bytes())
    assert saved["classes"] == ("Abyssinian", "Bengal") and saved["model"].predict(np.zeros((1, 512))).shape == (1,)
    assert len((pets_study / "study.log").read_text().splitlines()) == 27 + 3
    # The shared pets hold 7 pairs of near-duplicates (the same photo twice, as the thumbnails show).
    assert "## Near-duplicate photos" in report and report.count("](duplicates/") == 14


def test_study_one_vs_rest_with_chosen_classes(pets_features, tmp_path, capsys):
    code, out, err = run_cli(capsys, "study", str(pets_features), "--pairs", "one-vs-rest", "--classes", "Bengal",
                             "--splits", "0.5,0.8", "--classifier", "logreg", "--out", str(tmp_path / "r"), "--json")
    assert code == 0, err
    report = last_json(out)
    assert report["num_trainings"] == 2 and report["best"][0]["class_2"] == "rest"
    assert "pair 1/1 Bengal vs rest" in err  # progress on stderr


@pytest.mark.parametrize("splits", ["0:0.9:0.1", "0.5,1.2", "abc"])
def test_study_split_outside_0_1_exits_2(pets_features, tmp_path, capsys, splits):
    code, _, err = run_cli(capsys, "study", str(pets_features), "--splits", splits, "--out", str(tmp_path / "r"))
    assert code == 2
    assert "--splits" in one_line_error(err, "study")
    assert not (tmp_path / "r").exists()


def _features(spark, folder, rows):
    from pyspark.ml.linalg import Vectors, VectorUDT
    from pyspark.sql.types import StringType, StructField, StructType

    schema = StructType([StructField("label", StringType()), StructField("features", VectorUDT())])
    frame = spark.createDataFrame([(label, Vectors.dense(values)) for label, values in rows], schema)
    frame.write.parquet(str(folder))
    return folder


@pytest.mark.parametrize("rows, message", [
    ([("cat", [0.0, 1.0]), ("cat", [1.0, 0.0])], "single class ('cat')"),
    ([("cat", [0.0, 1.0]), ("cat", [1.0, 0.0]), ("dog", [1.0, 1.0])], "class 'dog' has 1 example"),
])
def test_study_too_few_classes_or_examples_exits_2(spark, tmp_path, capsys, rows, message):
    features = _features(spark, tmp_path / "f", rows)
    code, _, err = run_cli(capsys, "study", str(features), "--out", str(tmp_path / "r"))
    assert code == 2 and message in one_line_error(err, "study")
    assert not (tmp_path / "r").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_study_features_without_labels_exits_2(spark, tmp_path, capsys):
    spark.createDataFrame([([0.0, 1.0],)], "features array<double>").write.parquet(str(tmp_path / "f"))
    code, _, err = run_cli(capsys, "study", str(tmp_path / "f"), "--out", str(tmp_path / "r"))
    assert code == 2 and "has no 'label' column" in one_line_error(err, "study")
    assert not (tmp_path / "r").exists()


def test_study_refuses_to_overwrite_a_foreign_folder(pets_features, tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep me")
    code, _, err = run_cli(capsys, "study", str(pets_features), "--out", str(tmp_path))
    assert code == 2 and "was not written by deepframes" in one_line_error(err, "study")
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_parse_splits_and_pairs():
    assert parse_splits("0.1:0.9:0.1")[-1] == 0.9 and len(parse_splits("0.1:0.9:0.1")) == 9
    assert len(make_pairs([str(i) for i in range(37)], "one-vs-one")) == 666


@pytest.mark.cluster
def test_study_runs_on_separate_executors(pets_features, cluster_spark, tmp_path):
    from deepframes.apps.study import run_study

    lines = []
    result = run_study(pets_features, tmp_path / "r", classes=["Abyssinian", "Bengal"], splits=(0.5, 0.8),
                       spark=cluster_spark, progress=lines.append)
    assert cluster_spark.sparkContext.master.startswith("local-cluster")
    assert result.num_trainings == 2 and result.best[0]["accuracy"] >= 0.85
    assert lines == ["near-duplicates: 7 pairs in 6 groups (cosine similarity >= 0.95)",
                     "pair 1/1 Abyssinian vs Bengal: best " + f"{result.best[0]['accuracy']:.3f}"
                     + f" at split {result.best[0]['split']:.2f}"]
