"""Benchmark: the breed study at the size of the original VGG16 study, on local[2].

37 classes x 200 rows of 4,096-dimensional synthetic features (7,400 rows, seeded; each class has
its own mean, at distances that vary, so accuracies range from hard to easy), then
``deepframes study --pairs one-vs-one --splits 0.1:0.9:0.1`` in a fresh process: 666 pairs x 9
splits = 5,994 linear SVM trainings. Prints the seconds and trainings/s, against the target of
300 s (the original needed 26 minutes on a 5-executor cluster for 36 pairs).

    .venv/bin/python bench/study.py [--classes 37] [--rows 200] [--dim 4096] [--master local[2]] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

TARGET_SECONDS = 300.0


def write_features(folder: Path, classes: int, rows: int, dim: int, seed: int = 0) -> Path:
    """Synthetic features with labels, as Parquet (``label`` string, ``features`` list<float>)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dim)).astype(np.float32)
    spread = np.linspace(0.01, 0.06, classes, dtype=np.float32)  # some classes sit close to others
    folder.mkdir(parents=True, exist_ok=True)
    labels, blocks = [], []
    for index in range(classes):
        noise = rng.standard_normal((rows, dim)).astype(np.float32)
        blocks.append(centres[index] * spread[index] + noise)
        labels += [f"class_{index:02d}"] * rows
    matrix = np.concatenate(blocks)
    features = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), dim).cast(pa.list_(pa.float32()))
    pq.write_table(pa.table({"label": labels, "features": features}), folder / "part-00000.parquet")
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=37)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--dim", type=int, default=4096)
    parser.add_argument("--splits", default="0.1:0.9:0.1")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="deepframes-bench-study-"))
    started = time.perf_counter()
    features = write_features(work / "features", args.classes, args.rows, args.dim)
    print(f"wrote {args.classes * args.rows} x {args.dim} features in {time.perf_counter() - started:.1f} s",
          file=sys.stderr)
    command = [str(Path(sys.executable).with_name("deepframes")), "study", str(features), "--pairs", "one-vs-one",
               "--splits", args.splits, "--iterations", "100", "--classifier", "svm", "--master", args.master,
               "--out", str(work / "report"), "--json"]
    started = time.perf_counter()
    finished = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    wall = time.perf_counter() - started
    report = json.loads(finished.stdout.strip().splitlines()[-1])
    trainings = report["num_trainings"]
    accuracies = [row["accuracy"] for row in report["best"]]
    rows = [
        ("pairs x splits", f"{report['num_pairs']} x {trainings // report['num_pairs']} = {trainings}"),
        ("study seconds (inside the command)", f"{report['seconds']:.1f}"),
        ("wall seconds (with Spark start-up)", f"{wall:.1f}"),
        ("trainings/s (wall)", f"{trainings / wall:.1f}"),
        ("best accuracy per pair, min / max", f"{min(accuracies):.3f} / {max(accuracies):.3f}"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"deepframes study on {args.master}: {args.classes} classes x {args.rows} rows x {args.dim} features")
    for name, value in rows:
        print(f"| {name:<{width}} | {value:>20} |")
    verdict = "met" if wall < TARGET_SECONDS else "NOT met"
    print(f"Target: under {TARGET_SECONDS:.0f} s in all: {wall:.1f} s, {verdict}. Report: {work / 'report'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"wall_seconds": wall, "trainings": trainings, **report}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
