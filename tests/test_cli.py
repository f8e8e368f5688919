"""The deepframes command: every verb has --help; --json; one-line errors with exit codes; the demo."""

from __future__ import annotations

import json
import os
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


def test_cli_missing_path_fails_in_one_line(no_spark, tmp_path, capsys):
    assert main(["images", str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("deepframes images: error: No such file or folder")


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
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"deepframes images: error: No such file or folder: {tmp_path / 'absent'}; "
                                                  "expected images, a folder or a glob. Check the path."]


# ---- arguments checked before Spark starts ------------------------------------------------------


def _features_folder(folder: Path, weights: str | None = "/nonexistent/squeezenet1.1.onnx") -> Path:
    """A features folder as 'featurize' leaves it (a Parquet part and, unless None, its record)."""
    folder.mkdir()
    (folder / "part-00000.parquet").write_bytes(b"PAR1")
    if weights is not None:
        record = {"featurizer": {"model": "squeezenet1.1", "weights": weights, "pooling": "avg"}, "label": "filename"}
        (folder / "_deepframes.json").write_text(json.dumps(record))
    return folder


@pytest.fixture
def no_spark(monkeypatch):
    """Fail the test if the command starts Spark."""
    import deepframes.cli

    def refuse(*args, **kwargs):
        raise AssertionError("Spark started before the arguments were checked")

    monkeypatch.setattr(deepframes.cli, "_spark", refuse)


def _model_folder(folder: Path) -> Path:
    (folder / "metadata").mkdir(parents=True)
    (folder / "stages").mkdir()
    return folder


@pytest.mark.parametrize("case, expected", [
    ("predict --top 0", "--top must be a positive integer; got 0"),
    ("predict not-a-model", "is not a model folder"),
    ("train --test-fraction 1.5", "--test-fraction must lie strictly between 0 and 1; got 1.5"),
    ("train --out existing", "already exists and was not written by deepframes"),
    ("train features without weights", "which does not exist here (features copied from another machine?)"),
    ("train features without record", "does not record the network that made its features"),
    ("featurize without weights", "needs its ONNX file"),
    ("featurize missing folder", "No such file or folder"),
    ("study --iterations 0", "--iterations must be a positive integer"),
    ("train --reject-threshold 1", "--reject-threshold: The reject threshold must be a number in [0, 1)"),
    ("predict --reject-threshold -0.1", "--reject-threshold: The reject threshold must be a number in [0, 1)"),
    ("serve --reject-threshold 2", "--reject-threshold: The reject threshold must be a number in [0, 1)"),
])
def test_cli_refuses_bad_arguments_before_spark_starts(case, expected, no_spark, tmp_path, capsys):
    from tests.conftest import PETS_IMAGES

    photo = str(PETS_IMAGES / "Bengal_1.jpg")
    features = str(_features_folder(tmp_path / "features"))
    model = str(_model_folder(tmp_path / "model"))
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("keep me\n")
    argv = {
        "predict --top 0": ["predict", model, photo, "--top", "0"],
        "predict not-a-model": ["predict", str(tmp_path), photo],
        "train --test-fraction 1.5": ["train", features, "--test-fraction", "1.5", "--out", str(tmp_path / "m")],
        "train --out existing": ["train", features, "--out", str(existing)],
        "train features without weights": ["train", features, "--out", str(tmp_path / "m")],
        "train features without record": ["train", str(_features_folder(tmp_path / "bare", weights=None)),
                                          "--out", str(tmp_path / "m")],
        "featurize without weights": ["featurize", str(PETS_IMAGES), "--out", str(tmp_path / "f")],
        "featurize missing folder": ["featurize", str(tmp_path / "absent"), "--weights", photo,
                                     "--out", str(tmp_path / "f")],
        "study --iterations 0": ["study", features, "--iterations", "0", "--out", str(tmp_path / "s")],
        "train --reject-threshold 1": ["train", features, "--reject-threshold", "1", "--out", str(tmp_path / "m")],
        "predict --reject-threshold -0.1": ["predict", model, photo, "--reject-threshold", "-0.1"],
        "serve --reject-threshold 2": ["serve", model, "--port", "0", "--reject-threshold", "2"],
    }[case]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"deepframes {argv[0]}: error: ") and expected in err[0], err
    assert not (tmp_path / "m").exists() and not (tmp_path / "f").exists()
    assert (existing / "notes.txt").read_text() == "keep me\n"


def test_cli_quiet_settings_silence_spark_start_up_noise(monkeypatch):
    from deepframes import _console

    monkeypatch.delenv("SPARK_LOCAL_IP", raising=False)
    monkeypatch.setattr(_console, "_loadable", lambda library: library != "libblas.so.3")
    settings = _console.quiet_settings("local[2]")
    options = settings["spark.driver.extraJavaOptions"].split()
    assert options[0].startswith("-Dlog4j.configurationFile=file:")  # deepframes' log4j file stays
    assert "-XX:Tier4InvocationThreshold=50000" in options  # the driver's default for local masters stays too
    assert options[-1] == "-Ddev.ludovic.netlib.blas.allowNative=false"
    assert not any("netlib.lapack" in option for option in options)  # only the library that is missing
    assert os.environ["SPARK_LOCAL_IP"] == "127.0.0.1"  # a local master binds to loopback: no warning
    monkeypatch.delenv("SPARK_LOCAL_IP")
    monkeypatch.setattr(_console, "_loadable", lambda library: True)
    assert _console.quiet_settings("spark://head:7077") == {}  # a cluster's driver address is left alone
    assert "SPARK_LOCAL_IP" not in os.environ


def test_cli_progress_line_counts_images():
    import io

    from deepframes._console import ProgressLine
    from deepframes.apps.progress import ImageCount

    stream = io.StringIO()
    progress = ProgressLine("featurizing", stream, every=3600)
    progress(ImageCount(150, 600, 2.0))  # not a terminal: periodic lines only, then the final one
    progress(ImageCount(600, 600, 6.0, final=True))
    assert stream.getvalue() == "featurizing: 600/600 images (100%), 100.0 images/s\n"


# ---- Ctrl-C ---------------------------------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(status.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@pytest.mark.slow
def test_cli_ctrl_c_is_one_line_exit_130_and_leaves_nothing(tmp_path):
    import os
    import signal
    import time

    from tests.apps.fixtures import SQUEEZENET
    from tests.conftest import PETS_IMAGES, REPO_ROOT

    out = tmp_path / "features"
    # A session of its own, as a terminal's job: Ctrl-C reaches the whole process group.
    command = subprocess.Popen(
        [sys.executable, "-m", "deepframes.cli", "featurize", str(PETS_IMAGES), "--weights", SQUEEZENET,
         "--out", str(out)], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and command.poll() is None:  # until Python workers featurize
            processes = _descendants(command.pid)
            # The worker daemon itself (spark-submit's command line names it too, in a --conf).
            if any(b"-m\x00deepframes._worker_daemon" in Path(f"/proc/{pid}/cmdline").read_bytes()
                   for pid in processes if Path(f"/proc/{pid}/cmdline").exists()):
                break
            time.sleep(0.2)
        time.sleep(1)
        processes = _descendants(command.pid)
        assert command.poll() is None, command.communicate()
        os.killpg(command.pid, signal.SIGINT)
        _, err = command.communicate(timeout=120)
    finally:
        if command.poll() is None:
            command.kill()
            command.wait()
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("featurizing: ", "WARNING: Using incubator"))
             and "WARN Utils: Service 'SparkUI' could not bind" not in line]
    assert command.returncode == 130
    assert lines == [f"deepframes featurize: interrupted; the rows written are kept in {out}: run the same "
                     "command with --resume to continue"], err
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in processes):
        time.sleep(0.5)
    assert not [pid for pid in processes if Path(f"/proc/{pid}").exists()]  # JVM, daemon, workers: gone
    # What finished tasks wrote is kept for --resume; nothing of the tasks that were cancelled.
    assert list(tmp_path.iterdir()) == [out] and (out / "_deepframes.running").exists()
    assert not (out / "_temporary").exists() and all(
        path.name.startswith("part-") for path in out.iterdir() if not path.name.startswith((".", "_")))


@pytest.mark.parametrize("verbose", [False, True])
def test_cli_verbose_keeps_spark_start_up_warnings(verbose, monkeypatch):
    import argparse
    import importlib

    from deepframes import _console
    from deepframes.cli import _spark

    started = {}
    module = importlib.import_module("deepframes.session")  # the package re-exports the function by that name
    monkeypatch.setattr(module, "session", lambda master, ship_env, **settings: started.update(settings))
    monkeypatch.setattr(_console, "_loadable", lambda library: False)
    monkeypatch.setattr(_console, "quiet_interrupts", lambda spark: None)
    monkeypatch.setenv("SPARK_LOCAL_IP", "10.0.0.1")  # a user's own setting always stands
    _spark(argparse.Namespace(master="local[2]", ship_env=False, verbose=verbose), {"spark.ui.showConsoleProgress": "false"})
    assert ("spark.driver.extraJavaOptions" in started) is not verbose
    assert started["spark.ui.showConsoleProgress"] == "false" and os.environ["SPARK_LOCAL_IP"] == "10.0.0.1"
