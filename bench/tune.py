"""Benchmark: the same 8-trial search with parallelism=1 and parallelism=2, in one process.

Synthetic 512-dimensional features of 3 classes (4,800 rows, seeded), a TorchEstimator MLP,
8 grid points (learning rate x batch size), 20 epochs each, on local[2]. Prints both wall times
and the speed-up, against the target of 1.6x.

    .venv/bin/python bench/tune.py [--rows 4800] [--epochs 20] [--framework torch|keras] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

TARGET_SPEEDUP = 1.6


def features(spark, rows: int, dim: int = 512, classes: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, rows)
    centres = rng.normal(size=(classes, dim)) * 0.3
    matrix = (centres[labels] + rng.normal(size=(rows, dim))).astype(np.float32)
    import pandas as pd

    frame = pd.DataFrame({"features": list(matrix), "label": labels.astype(np.int64)})
    return spark.createDataFrame(frame).repartition(2).cache()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4800)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--framework", choices=("torch", "keras"), default="torch")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    import deepframes
    from deepframes.training.examples import small_mlp, small_torch_mlp

    spark = deepframes.session("local[2]", **{"spark.ui.showConsoleProgress": "false"})  # the table alone
    df = features(spark, args.rows)
    df.count()
    if args.framework == "torch":
        import functools

        estimator = deepframes.TorchEstimator(model=functools.partial(small_torch_mlp, 512, 3, 64), epochs=args.epochs)
    else:
        import functools

        estimator = deepframes.KerasEstimator(model=functools.partial(small_mlp, 512, 3, 64), epochs=args.epochs)
    space = {"learningRate": [0.003, 0.001, 0.0003, 0.0001], "batchSize": [32, 64]}
    # Warm both Python workers (framework imports) so neither contender pays for it.
    deepframes.tune(estimator.copy({estimator.epochs: 1}), df, {"learningRate": [0.01, 0.02]},
                    metric="val_accuracy", parallelism=2, refit=False)
    seconds = {}
    for parallelism in (1, 2):
        started = time.perf_counter()
        found = deepframes.tune(estimator, df, space, metric="val_accuracy", parallelism=parallelism, seed=0,
                                refit=False)
        seconds[parallelism] = time.perf_counter() - started
        print(f"parallelism={parallelism}: {seconds[parallelism]:.1f} s for 8 trials (no refit), best "
              f"val_accuracy {found.results['metric'].max():.3f}", file=sys.stderr)
    speedup = seconds[1] / seconds[2]
    print(f"| trials | parallelism=1 | parallelism=2 | speed-up | target |\n|---|---|---|---|---|\n"
          f"| 8 | {seconds[1]:.1f} s | {seconds[2]:.1f} s | {speedup:.2f}x | {TARGET_SPEEDUP}x |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"seconds": seconds, "speedup": speedup, "target": TARGET_SPEEDUP}, handle)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
