"""deepframes train and predict: a saved PipelineModel that reads images, scores, and bad folders."""

from __future__ import annotations

import pytest
from pyspark.ml import PipelineModel

import deepframes
from tests.apps.fixtures import fixture_result
from tests.apps.helpers import last_json, one_line_error, run_cli
from tests.conftest import LOCAL_MASTER

pytestmark = pytest.mark.slow


def test_train_on_features_scores_and_saves_a_pipeline_with_the_featurizer(pets_model):
    result = fixture_result(pets_model)
    assert result["accuracy"] >= 0.9, result
    assert result["labels"] == ["Abyssinian", "Bengal", "american_bulldog"]
    assert result["num_test"] == 120 and sum(map(sum, result["confusion"])) == 120
    assert (pets_model / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    stages = [type(stage).__name__ for stage in PipelineModel.load(str(pets_model)).stages]
    assert stages == ["ImageFeaturizer", "NoveltyModel", "StringIndexerModel", "LogisticRegressionModel",
                      "IndexToString"]


def test_predict_gives_top_3_breeds_per_image(pets_model, pets_images, spark, capsys):
    photos = [str(pets_images / name) for name in ("Bengal_10.jpg", "american_bulldog_10.jpg", "Abyssinian_34.jpg")]
    code, out, err = run_cli(capsys, "predict", str(pets_model), *photos, "--json")
    assert code == 0, err
    answers = {row["path"].rsplit("/", 1)[-1]: row["predictions"] for row in last_json(out)["predictions"]}
    assert {name: top[0]["label"] for name, top in answers.items()} == {
        "Bengal_10.jpg": "Bengal", "american_bulldog_10.jpg": "american_bulldog", "Abyssinian_34.jpg": "Abyssinian"}
    assert all(len(top) == 3 and abs(sum(p["probability"] for p in top) - 1) < 1e-3 for top in answers.values())
    code, out, _ = run_cli(capsys, "predict", str(pets_model), photos[0], "--top", "1")
    assert code == 0 and "Bengal_10.jpg  Bengal" in out


def test_saved_model_answers_sql_through_register_udf(pets_model, pets_images, spark):
    deepframes.register_udf(spark, "breed", PipelineModel.load(str(pets_model)))
    deepframes.read_images(str(pets_images / "Bengal_1?.jpg"), spark=spark).createOrReplaceTempView("bengals")
    breeds = [row.breed for row in spark.sql("SELECT breed(image) AS breed FROM bengals").collect()]
    assert len(breeds) == 10 and breeds.count("Bengal") >= 8


def test_train_mlp_from_images(spark_sessions, pets_images, tmp_path, capsys):
    spark_sessions.get(LOCAL_MASTER)
    from tests.apps.fixtures import SQUEEZENET

    code, out, err = run_cli(capsys, "train", str(pets_images / "[AB]*_[0-9].jpg"), "--weights", SQUEEZENET,
                             "--classifier", "mlp", "--out", str(tmp_path / "m"), "--json")
    assert code == 0, err
    assert last_json(out)["labels"] == ["Abyssinian", "Bengal"]
    assert (tmp_path / "m" / "metrics.json").exists()
    from deepframes.apps.predict import BreedPredictor
    from deepframes.serve import LocalPipeline

    spark = spark_sessions.get(LOCAL_MASTER)
    pipeline = LocalPipeline(tmp_path / "m", spark)  # the MLP runs in-process, as a NumPy head
    read_without_spark = LocalPipeline(tmp_path / "m")
    paths = [str(pets_images / name) for name in ("Bengal_10.jpg", "Abyssinian_10.jpg", "Bengal_11.jpg")]
    for expected in BreedPredictor(tmp_path / "m", spark).predict_paths(paths, top=2):
        for local in (pipeline, read_without_spark):
            answer = local.predict(open(expected.path.removeprefix("file:"), "rb").read(), top=2)
            assert [label for label, _ in answer.top] == [label for label, _ in expected.top]
            assert max(abs(a - b) for (_, a), (_, b) in zip(answer.top, expected.top)) < 1e-4


def test_predict_with_a_folder_that_is_not_a_model_exits_2(pets_images, spark, tmp_path, capsys):
    code, _, err = run_cli(capsys, "predict", str(tmp_path), str(pets_images / "Bengal_1.jpg"))
    assert code == 2 and "is not a model folder" in one_line_error(err, "predict")


def test_train_single_class_exits_2_and_writes_nothing(pets_images, spark, tmp_path, capsys):
    from tests.apps.fixtures import SQUEEZENET

    out = tmp_path / "model"
    code, _, err = run_cli(capsys, "train", str(pets_images / "Bengal_1?.jpg"), "--weights", SQUEEZENET, "--out", str(out))
    assert code == 2 and "single class ('Bengal')" in one_line_error(err, "train")
    assert list(tmp_path.iterdir()) == []


def test_train_test_fraction_outside_0_1_exits_2(pets_features, spark, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", str(pets_features), "--test-fraction", "1.5", "--out", str(tmp_path / "m"))
    assert code == 2 and "--test-fraction" in one_line_error(err, "train")
    assert list(tmp_path.iterdir()) == []


def test_model_folder_carries_the_network_weights(pets_images, spark, tmp_path, capsys):
    # Features made with a weights file that is then gone, as on features copied from another machine.
    import shutil

    from tests.apps.fixtures import SQUEEZENET
    from tests.conftest import deepframes_command

    first, second = tmp_path / "net-1" / "squeezenet1.1.onnx", tmp_path / "net-2" / "squeezenet1.1.onnx"
    for copy in (first, second):
        copy.parent.mkdir()
        shutil.copy(SQUEEZENET, copy)
    features, model = tmp_path / "features", tmp_path / "model"
    made = deepframes_command("featurize", str(pets_images / "[AB]*_1?.jpg"), "--weights", str(first),
                              "--out", str(features))
    assert made.returncode == 0, made.stderr
    assert "featurizing: 20/20 images (100%)" in made.stderr  # progress in images, on stderr
    for noise in ("loopback address", "SPARK_LOCAL_IP", "netlib", "Traceback"):
        assert noise not in made.stderr, made.stderr
    shutil.rmtree(first.parent)

    refused = deepframes_command("train", str(features), "--out", str(model))
    assert refused.returncode == 2 and not model.exists()
    assert refused.stderr.strip().splitlines() == [
        f"deepframes train: error: {features} was featurized with squeezenet1.1 weights from {first}, which does not "
        "exist here (features copied from another machine?); expected that file, to copy it into the model. "
        "Pass it with --weights FILE."]

    trained = deepframes_command("train", str(features), "--weights", str(second), "--out", str(model))
    assert trained.returncode == 0, trained.stderr
    assert "netlib" not in trained.stderr and "loopback address" not in trained.stderr, trained.stderr
    assert "true \\ predicted  Abyssinian  Bengal" in trained.stdout  # the confusion matrix names its classes
    shutil.rmtree(second.parent)
    assert list(model.glob("stages/*_ImageFeaturizer_*/files/weights/squeezenet1.1.onnx"))
    code, out, err = run_cli(capsys, "predict", str(model), str(pets_images / "Bengal_10.jpg"), "--top", "1")
    assert code == 0 and "Bengal_10.jpg  Bengal" in out, err  # the folder is all predict needs


def test_predict_without_spark_answers_as_spark_on_every_pet_photo(pets_model, pets_images, spark):
    from deepframes.apps.predict import BreedPredictor

    with_spark = BreedPredictor(pets_model, spark).predict_paths([str(pets_images)], top=3)
    in_process = BreedPredictor(pets_model, None).predict_paths([str(pets_images)], top=3)
    assert len(with_spark) == len(in_process) == 600
    for expected, answer in zip(with_spark, in_process):
        assert (answer.path, answer.error, answer.recognised) == (expected.path, expected.error, expected.recognised)
        assert [p for _, p in answer.top] == pytest.approx([p for _, p in expected.top], abs=1e-4)
        tied = len(expected.top) > 1 and expected.top[0][1] - expected.top[1][1] < 1e-4
        assert tied or [label for label, _ in answer.top] == [label for label, _ in expected.top]
        assert answer.hint == expected.hint


def test_predict_of_a_few_photos_starts_no_java(pets_model, pets_images, tmp_path):
    """No JVM: with no Java to be found the command still answers (and it would fail if it tried)."""
    import json
    import os
    import subprocess
    import sys

    photos = [str(pets_images / name) for name in ("Bengal_10.jpg", "american_bulldog_10.jpg", "Abyssinian_5.jpg")]
    bin_folder = os.path.dirname(sys.executable)
    environment = {**os.environ, "JAVA_HOME": str(tmp_path / "no-java"), "PATH": bin_folder}
    environment.pop("DEEPFRAMES_MASTER", None)
    completed = subprocess.run([os.path.join(bin_folder, "deepframes"), "predict", str(pets_model), *photos, "--json"],
                               capture_output=True, text=True, env=environment, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    answers = json.loads(completed.stdout.strip().splitlines()[-1])["predictions"]
    assert [row["predictions"][0]["label"] for row in answers] == ["Abyssinian", "Bengal", "american_bulldog"]


def test_saved_matrices_read_as_mllib_writes_them():
    import numpy as np
    from pyspark.ml.linalg import DenseMatrix, DenseVector, MatrixUDT, SparseMatrix, SparseVector, VectorUDT

    from deepframes.inference.saved import _matrix, _vector

    fields = ("type", "numRows", "numCols", "colPtrs", "rowIndices", "values", "isTransposed")
    matrices = [DenseMatrix(2, 3, [1, 2, 3, 4, 5, 6]), DenseMatrix(2, 3, [1, 2, 3, 4, 5, 6], isTransposed=True),
                SparseMatrix(2, 3, [0, 1, 1, 3], [1, 0, 1], [7, 8, 9]),
                SparseMatrix(3, 2, [0, 2, 3, 3], [0, 1, 1], [7, 8, 9], isTransposed=True)]
    for matrix in matrices:
        stored = dict(zip(fields, MatrixUDT().serialize(matrix)))
        assert np.array_equal(_matrix(stored), matrix.toArray())
    for vector in (DenseVector([1.0, 2.0]), SparseVector(4, [1, 3], [5.0, 6.0])):
        stored = dict(zip(("type", "size", "indices", "values"), VectorUDT().serialize(vector)))
        assert np.array_equal(_vector(stored), vector.toArray())
