"""Run as a script (``python -m tests.connect_cli_checks OUT.json``): the breed commands
(featurize, train, predict, study, predict --watch) through a Spark Connect session, as a user
with ``DEEPFRAMES_REMOTE`` set runs them. One process, one local Connect server for all of them;
the tests read what it writes."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import traceback

from tests.conftest import PETS_IMAGES, SHARED

SQUEEZENET = str(SHARED / "models" / "squeezenet1.1.onnx")


def run_command(*argv: str) -> dict:
    """``deepframes ARGV`` in this process: exit status, stderr's last lines, the JSON it printed."""
    from deepframes.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([*argv, "--json"])
        except BaseException:  # noqa: BLE001 - reported, not raised: the next command still runs
            code, err = -1, io.StringIO(traceback.format_exc())
    lines = out.getvalue().strip().splitlines()
    try:
        payload = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        payload = None
    return {"code": code, "json": payload, "stderr": err.getvalue()[-3000:]}


def main(out: str) -> None:
    os.environ["DEEPFRAMES_REMOTE"] = "local[2]"
    import deepframes

    spark = deepframes.session(**{"spark.ui.showConsoleProgress": "false"})
    work = tempfile.mkdtemp(prefix="deepframes-connect-cli-")
    try:
        inbox = os.path.join(work, "inbox")
        os.makedirs(inbox)
        shutil.copyfile(PETS_IMAGES / "Bengal_10.jpg", os.path.join(inbox, "Bengal_10.jpg"))
        features, model = os.path.join(work, "features"), os.path.join(work, "model")
        results = {
            "session_type": type(spark).__module__,
            "featurize": run_command("featurize", str(PETS_IMAGES / "[AB]*_1?.jpg"), "--weights", SQUEEZENET,
                                     "--out", features),
            "train": run_command("train", features, "--out", model),
            "predict": run_command("predict", model, str(PETS_IMAGES / "Bengal_10.jpg"),
                                   str(PETS_IMAGES / "Abyssinian_10.jpg"), "--top", "2"),
            "study": run_command("study", features, "--out", os.path.join(work, "study"), "--splits", "0.5,0.8"),
            "watch": run_command("predict", model, "--watch", inbox, "--out", os.path.join(work, "watch"), "--once"),
        }
        results["study_files"] = sorted(os.listdir(os.path.join(work, "study"))) if results["study"]["code"] == 0 else []
        with open(out, "w") as sink:
            json.dump(results, sink)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        spark.stop()


if __name__ == "__main__":
    main(sys.argv[1])
