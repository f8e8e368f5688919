"""Benchmark: small jobs need no cluster. ``deepframes predict`` of 3 photos and ``deepframes serve``
from a cold process, against the same commands made to start Spark.

A model is trained once on the shared pets (``deepframes train``, in a temporary folder). Then, in
alternating rounds, each in a fresh process:

  predict            ``deepframes predict MODEL 3 photos`` (in-process: no Spark)
  predict on Spark   the same with ``--master local[2]`` (the path every predict took before)
  serve              ``deepframes serve MODEL``: seconds until the first answer to a photo, the
                     process tree's PSS then, and whether a JVM is in that tree

Target: predict of 3 photos in at most 3 s, and a service with no JVM.

    .venv/bin/python bench/small_jobs.py [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cold import SHARED, pss_kb, tree  # noqa: E402

DEEPFRAMES = str(HERE.parent / ".venv" / "bin" / "deepframes")
PHOTOS = [str(SHARED / "data" / "pets" / "images" / name)
          for name in ("Bengal_10.jpg", "american_bulldog_10.jpg", "Abyssinian_34.jpg")]
MODEL = str(SHARED / "models" / "squeezenet1.1.onnx")
PREDICT_TARGET_SECONDS = 3.0


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    completed = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed: {completed.stderr.strip()[-500:]}")
    answers = json.loads(completed.stdout.strip().splitlines()[-1])["predictions"]
    if [row["predictions"][0]["label"] for row in answers] != ["Abyssinian", "Bengal", "american_bulldog"]:
        raise RuntimeError(f"wrong answers: {answers}")
    return seconds


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_once(model: str) -> tuple[float, float, bool]:
    """Seconds from start to the first answer, the tree's PSS in GB then, and whether a JVM runs."""
    port = _free_port()
    started = time.perf_counter()
    process = subprocess.Popen([DEEPFRAMES, "serve", model, "--port", str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.jpg\"\r\n"
                f"Content-Type: image/jpeg\r\n\r\n").encode() + Path(PHOTOS[0]).read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        while True:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/api/predict", data=body, method="POST",
                                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
                with urllib.request.urlopen(request, timeout=30) as response:
                    json.loads(response.read())
                break
            except OSError:
                if process.poll() is not None or time.perf_counter() - started > 120:
                    raise RuntimeError("the service did not answer")
                time.sleep(0.05)
        seconds = time.perf_counter() - started
        pids = tree(process.pid)
        memory = sum(pss_kb(pid) for pid in pids) / 1024 / 1024
        java = any(b"java" in Path(f"/proc/{pid}/cmdline").read_bytes()[:300] for pid in pids
                   if Path(f"/proc/{pid}/cmdline").exists())
        return seconds, memory, java
    finally:
        os.killpg(process.pid, 15)
        process.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-small-jobs-") as scratch:
        model = os.path.join(scratch, "model")
        subprocess.run([DEEPFRAMES, "train", str(SHARED / "data" / "pets" / "images"), "--weights", MODEL,
                        "--out", model], check=True, capture_output=True, timeout=600)
        predict, on_spark, served = [], [], []
        for _ in range(args.rounds):
            predict.append(timed([DEEPFRAMES, "predict", model, *PHOTOS, "--json"]))
            on_spark.append(timed([DEEPFRAMES, "predict", model, *PHOTOS, "--json", "--master", "local[2]"]))
            served.append(serve_once(model))
    seconds = statistics.median(predict)
    print(f"\nsmall jobs, cold processes, median of {args.rounds} alternating rounds\n")
    print("| command | seconds | notes |\n|---|---:|---|")
    print(f"| deepframes predict MODEL 3 photos | {seconds:.2f} | in-process, no JVM |")
    print(f"| deepframes predict MODEL 3 photos --master local[2] | {statistics.median(on_spark):.2f} | "
          "Spark session, the saved PipelineModel |")
    serve_seconds = statistics.median(s for s, _, _ in served)
    serve_memory = statistics.median(m for _, m, _ in served)
    java = any(j for _, _, j in served)
    print(f"| deepframes serve MODEL, start to first answer | {serve_seconds:.2f} | "
          f"process tree {serve_memory:.2f} GB PSS, JVM: {'yes' if java else 'none'} |")
    print(f"\nJudged: predict of 3 photos {seconds:.2f} s (target <= {PREDICT_TARGET_SECONDS}: "
          f"{'met' if seconds <= PREDICT_TARGET_SECONDS else 'NOT met'}); the service's tree "
          f"{'holds a JVM: NOT met' if java else 'holds no JVM: met'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"predict": predict, "predict_on_spark": on_spark,
                                               "serve": served}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
