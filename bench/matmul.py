"""Benchmark: square float32 matrix products, NumPy vs TensorFlow vs PyTorch (and GPUs when
present), 256 to 4,096; then a block-wise product inside Spark through map_blocks.

Prints GFLOP/s per library and size (2 n^3 / seconds, best of --repeats after a warm-up) as a
table, writes a PNG plot, and compares the distributed product (rows of A in a DataFrame times a
broadcast B) with the same product in one process.

    .venv/bin/python bench/matmul.py [--sizes 256,512,1024,2048,4096] [--spark-size 2048]
                                     [--plot bench/results/matmul.png] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import deepframes


def best_seconds(run: Callable[[], object], repeats: int, min_total: float = 0.5) -> float:
    """Fastest of at least ``repeats`` runs after a warm-up, running on until ``min_total``
    seconds have passed, so small sizes are not judged on a few microsecond-scale samples."""
    run()
    times: list[float] = []
    while len(times) < repeats or (sum(times) < min_total and len(times) < 200):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def contenders(size: int) -> dict[str, Callable[[], object]]:
    rng = np.random.default_rng(size)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    runs: dict[str, Callable[[], object]] = {"numpy (cpu)": lambda: a @ b}
    try:
        import tensorflow as tf

        ta, tb = tf.constant(a), tf.constant(b)
        with tf.device("/CPU:0"):
            runs["tensorflow (cpu)"] = lambda: tf.linalg.matmul(ta, tb).numpy()
        if tf.config.list_physical_devices("GPU"):
            with tf.device("/GPU:0"):
                ga, gb = tf.identity(ta), tf.identity(tb)
            runs["tensorflow (gpu)"] = lambda: tf.linalg.matmul(ga, gb).numpy()
    except ImportError:
        pass
    try:
        import torch

        pa, pb = torch.from_numpy(a), torch.from_numpy(b)
        runs["pytorch (cpu)"] = lambda: pa @ pb
        if torch.cuda.is_available():
            ca, cb = pa.cuda(), pb.cuda()
            runs["pytorch (gpu)"] = lambda: (ca @ cb, torch.cuda.synchronize())
    except ImportError:
        pass
    return runs


def local_table(sizes: list[int], repeats: int) -> dict[str, dict[int, float]]:
    """GFLOP/s by library (outer loop) and size, so one library's idle threads settle first."""
    runs = {size: contenders(size) for size in sizes}
    gflops: dict[str, dict[int, float]] = {}
    for name in runs[sizes[0]]:
        for size in sizes:
            seconds = best_seconds(runs[size][name], repeats if size <= 2048 else 1)
            gflops.setdefault(name, {})[size] = 2 * size**3 / seconds / 1e9
    return gflops


def spark_product(size: int, master: str, repeats: int) -> dict[str, float]:
    """Rows of A as a DataFrame, B broadcast; map_blocks multiplies each block of rows by B."""
    spark = deepframes.session(master, app_name="bench-matmul", **{"spark.ui.showConsoleProgress": "false"})
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    rows = spark.createDataFrame([(index, row.tolist()) for index, row in enumerate(a)], "i long, a array<float>")
    rows = deepframes.append_shape(rows, "a", [None, size]).repartition(2 * spark.sparkContext.defaultParallelism).cache()
    rows.count()
    shared_b = spark.sparkContext.broadcast(b)

    def product() -> np.ndarray:
        out = deepframes.map_blocks(lambda block: {"c": block["a"] @ shared_b.value}, rows, columns=["a"])
        table = out.select("i", "c").toArrow()
        result = np.empty((size, size), dtype=np.float32)
        cells = table.column("c").combine_chunks().flatten().to_numpy().reshape(-1, size)
        result[table.column("i").to_numpy()] = cells
        return result

    distributed = best_seconds(product, repeats)
    local = best_seconds(lambda: a @ b, repeats)
    error = float(np.abs(product() - a @ b).max())
    spark.stop()
    return {"size": size, "spark_seconds": distributed, "local_seconds": local, "max_abs_error": error,
            "spark_gflops": 2 * size**3 / distributed / 1e9, "local_gflops": 2 * size**3 / local / 1e9}


def plot(gflops: dict[str, dict[int, float]], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, by_size in gflops.items():
        axes.plot(list(by_size), list(by_size.values()), marker="o", label=name)
    axes.set_xscale("log", base=2)
    axes.set_xlabel("matrix size n (n x n, float32)")
    axes.set_ylabel("GFLOP/s")
    axes.set_title("Matrix multiplication throughput")
    axes.grid(True, alpha=0.3)
    axes.legend()
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=120, bbox_inches="tight")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,512,1024,2048,4096")
    parser.add_argument("--spark-size", type=int, default=2048)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--plot", default="bench/results/matmul.png")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()

    sizes = [int(size) for size in args.sizes.split(",")]
    gflops = local_table(sizes, args.repeats)
    print("\nmatmul benchmark: GFLOP/s, square float32 matrices, best of runs\n")
    print("| library          | " + " | ".join(f"{size:>6}" for size in sizes) + " |")
    print("|------------------|" + "|".join("-" * 8 for _ in sizes) + "|")
    for name, by_size in gflops.items():
        print(f"| {name:<16} | " + " | ".join(f"{by_size[size]:>6.1f}" for size in sizes) + " |")
    plot(gflops, Path(args.plot))
    print(f"\nPlot written to {args.plot}")

    spark = spark_product(args.spark_size, args.master, args.repeats)
    ratio = spark["spark_seconds"] / spark["local_seconds"]
    print(f"\nIn Spark ({args.master}): {args.spark_size}x{args.spark_size} rows of A (DataFrame) times "
          f"broadcast B through map_blocks, collected to the driver as Arrow\n")
    print("| product                          | seconds | GFLOP/s |")
    print("|----------------------------------|---------|---------|")
    print(f"| deepframes.map_blocks (Spark)    | {spark['spark_seconds']:>7.2f} | {spark['spark_gflops']:>7.1f} |")
    print(f"| NumPy A @ B, one process         | {spark['local_seconds']:>7.2f} | {spark['local_gflops']:>7.1f} |")
    print(f"\nSpark / one process time = {ratio:.1f}x; max |difference| = {spark['max_abs_error']:.2e}")
    if args.json:
        Path(args.json).write_text(json.dumps({"gflops": gflops, "spark": spark}, indent=2))


if __name__ == "__main__":
    main()
