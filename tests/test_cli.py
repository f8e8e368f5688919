"""The deepframes command: every verb has --help; --json; one-line errors with exit codes; the demo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deepframes.cli import main

DEEPFRAMES = Path(sys.executable).with_name("deepframes")


def _last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_cli_info_json_lists_versions(capsys):
    assert main(["info", "--json", "--master", "local[2]"]) == 0
    report = _last_json(capsys.readouterr().out)
    assert report["master"] == "local[2]" and report["master_source"] == "argument"
    assert report["pyspark"].startswith("4.")
    assert report["java"]["usable"] is True
    assert set(report["engines"]) == {"tensorflow", "keras", "torch", "onnxruntime"}


def test_cli_images_reports_pets(spark, pets_images, capsys):
    code = main(["images", str(pets_images), "--label", "filename", "--json"])
    assert code == 0
    report = _last_json(capsys.readouterr().out)
    assert (report["num_files"], report["num_images"], report["num_labels"], report["num_errors"]) == (600, 600, 3, 0)


def test_cli_images_table_lists_errors(spark, odd_images, capsys):
    assert main(["images", str(odd_images)]) == 0
    out = capsys.readouterr().out
    assert "7 files, 4 images decoded" in out
    assert "empty.jpg: empty file (0 bytes)" in out


def test_cli_missing_path_fails_in_one_line(spark, tmp_path, capsys):
    assert main(["images", str(tmp_path / "absent")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("deepframes images: error: read_images: no such file")


def test_cli_demo_on_a_small_folder_runs_the_whole_path(spark, tmp_path, capsys):
    from deepframes.apps.demo import write_digits

    write_digits(tmp_path / "digits", limit=120)
    out = tmp_path / "demo"
    assert main(["demo", "--images", str(tmp_path / "digits"), "--out", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    report = _last_json(captured.out)
    for step in ("featurizing", "training and evaluating", "predicting through Spark SQL", "study"):
        assert f"demo: {step}" in captured.err, step  # progress, one line per step, on stderr
    assert (report["num_images"], report["num_classes"], report["network"]) == (120, 10, "tiny-cnn")
    assert len(report["sql_predictions"]) == 8 and all(row["predicted"] for row in report["sql_predictions"])
    for name in ("report.md", "model/confusion_matrix.png", "study/plots/overview.png", "network/tiny-cnn.onnx"):
        assert (out / name).is_file(), name
    assert not (out / "images").exists()  # a given folder is used where it is


@pytest.mark.slow
def test_cli_demo_runs_the_whole_default_path(spark, tmp_path, capsys):
    # What `make demo` runs: the 1,797 scikit-learn digits, the tiny network, train, SQL, study.
    assert main(["demo", "--out", str(tmp_path / "demo"), "--json"]) == 0
    report = _last_json(capsys.readouterr().out)
    assert (report["num_images"], report["num_classes"]) == (1797, 10)
    assert report["accuracy"] >= 0.9, report["accuracy"]  # its time is bench/, README: about a minute
    assert (tmp_path / "demo" / "report.md").is_file()


def test_cli_demo_that_fails_midway_leaves_nothing(spark, tmp_path, capsys, monkeypatch):
    from deepframes.apps import demo

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(demo, "train_classifier", broken)
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 1
    assert "deepframes demo: error: disk full" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()


def test_cli_verbose_flag_after_the_command():
    from deepframes.cli import build_parser

    assert build_parser().parse_args(["info", "-v", "--json"]).verbose is True
    assert build_parser().parse_args(["-v", "info"]).verbose is True
    assert build_parser().parse_args(["info", "--json"]).verbose is False


def test_cli_demo_with_a_folder_without_images_exits_2_and_leaves_nothing(spark, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["demo", "--images", str(tmp_path / "empty"), "--out", str(tmp_path / "demo")]) == 2
    assert "found no image files" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()


def test_cli_usage_error_exits_2_with_hint(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["images"])
    assert exit_info.value.code == 2
    assert "Try 'deepframes images --help'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command", [[], ["info"], ["images"], ["featurize"], ["study"], ["train"], ["predict"], ["serve"], ["demo"]]
)
def test_cli_help_on_every_command(command):
    result = subprocess.run([str(DEEPFRAMES), *command, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "usage: deepframes" in result.stdout


def test_cli_installed_command_fails_without_traceback(tmp_path):
    result = subprocess.run(
        [str(DEEPFRAMES), "images", str(tmp_path / "absent"), "--master", "local[1]"],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("deepframes images: error: read_images: no such file")
