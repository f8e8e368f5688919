"""Benchmark: KerasEstimator(numSlots=1) against plain ``model.fit`` on the same features.

Synthetic 512-dimensional features of 3 classes (6,000 rows, seeded), the same Keras MLP and
epochs. The baseline collects the features to NumPy and calls ``model.fit`` in this process; the
estimator reads them through Spark. Throughput is training samples per second of the training
loop (from ``summary_``), and the fit's wall time counted from the call to the fitted model (Spark's
jobs, the checks, a rank's process start where there is one). Targets: the 1-slot estimator's
training loop at 0.8x or more of plain ``model.fit``'s throughput, and its wall time at most 2x
plain ``model.fit``'s; the 2-slot figures are printed beside them.

    .venv/bin/python bench/estimator.py [--rows 6000] [--epochs 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time

TARGET_RATIO = 0.8
TARGET_WALL_RATIO = 2.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    import numpy as np

    import deepframes
    from deepframes.training.examples import small_mlp

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from tune import features

    spark = deepframes.session("local[2]", **{"spark.ui.showConsoleProgress": "false"})  # the table alone
    df = features(spark, args.rows)
    factory = functools.partial(small_mlp, 512, 3, 256)

    import keras

    table = df.toArrow()  # the baseline's collect (the estimator never does this)
    x = np.stack(table.column("features").to_numpy(zero_copy_only=False)).astype(np.float32)
    y = table.column("label").to_numpy()
    keras.utils.set_random_seed(0)
    model = factory()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    started = time.perf_counter()
    model.fit(x, y, batch_size=args.batch, epochs=args.epochs, verbose=0)
    plain_seconds = time.perf_counter() - started
    plain = args.rows * args.epochs / plain_seconds

    rows = {}
    for slots in (1, 2):
        started = time.perf_counter()
        fitted = deepframes.KerasEstimator(model=factory, epochs=args.epochs, batchSize=args.batch,
                                           numSlots=slots).fit(df)
        wall = time.perf_counter() - started
        rows[slots] = (fitted.summary_["samples_per_second"], wall)
    print(f"plain model.fit: {plain:.0f} samples/s ({plain_seconds:.1f} s)", file=sys.stderr)
    ratio = rows[1][0] / plain
    wall_ratio = rows[1][1] / plain_seconds
    print("| contender | samples/s (training loop) | vs plain | fit wall time | vs plain |\n|---|---|---|---|---|\n"
          f"| plain model.fit, NumPy in one process | {plain:.0f} | 1.00x | {plain_seconds:.1f} s | 1.00x |\n"
          f"| KerasEstimator(numSlots=1) | {rows[1][0]:.0f} | {ratio:.2f}x | {rows[1][1]:.1f} s | {wall_ratio:.2f}x |\n"
          f"| KerasEstimator(numSlots=2) | {rows[2][0]:.0f} | {rows[2][0] / plain:.2f}x | {rows[2][1]:.1f} s | "
          f"{rows[2][1] / plain_seconds:.2f}x |")
    print(f"\nJudged (1 slot): training loop {ratio:.2f}x plain (target >= {TARGET_RATIO}: "
          f"{'met' if ratio >= TARGET_RATIO else 'NOT met'}); fit wall time {wall_ratio:.2f}x plain "
          f"(target <= {TARGET_WALL_RATIO}: {'met' if wall_ratio <= TARGET_WALL_RATIO else 'NOT met'})")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"plain": plain, "plain_seconds": plain_seconds, "estimator": rows, "ratio": ratio,
                       "wall_ratio": wall_ratio}, handle)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
