"""Benchmark: featurization throughput on a local standalone cluster with 1 worker, then 2 workers.

Each cluster is started with ``deepframes cluster start`` (workers of 1 core, 1g), the 600 shared
pet photos are featurized with SqueezeNet (``read_images(decode=False)`` + ``ImageFeaturizer``),
--warm-up times (the executors load the model; the driver's and executors' JITs compile) and then
--repeats times (median), and the cluster is stopped. Prints a table and
the scaling efficiency, throughput with 2 / (2 x throughput with 1); target >= 0.85. Needs a quiet
machine with at least 2 cores.

    .venv/bin/python bench/scaling.py [--images DIR] [--model FILE] [--warm-up 2] [--repeats 5]
                                      [--json out.json]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

session_module = importlib.import_module("deepframes.session")  # the module, not the function

SHARED = Path(__file__).resolve().parents[2] / "shared"
BATCH = 32


def featurize_job(spark, folder: str, model: str):
    import deepframes

    # Partitions sized from the cluster's cores: every executor gets work from the first wave.
    images = deepframes.read_images(folder, decode=False, spark=spark)
    featurizer = deepframes.ImageFeaturizer(inputCol="content", model="squeezenet1.1", weights=model,
                                            batchSize=BATCH)
    return featurizer.transform(images).select("path", "features")


# The executors move rows between files and Python workers; the optimising JIT (C2) recompiling
# each query's generated code takes CPU from the Python workers on a machine this small: the
# executors get the thresholds deepframes gives a local driver (deepframes/session.py).
PATIENT_JIT = {"spark.executor.extraJavaOptions": session_module.PATIENT_JIT}


def pin_workers(processes) -> None:
    """Worker i (every thread of its JVM) to CPU i: the executor it launches, and that executor's
    Python workers, inherit it, so each worker has one core as on a machine of its own. Without
    this, one worker's decoding thread and JVM borrow the idle second core, and the 1-worker
    figure is not one core's."""
    cpus = sorted(os.sched_getaffinity(0))
    workers = [process for process in processes if process.role.startswith("worker")]
    for index, worker in enumerate(workers):
        for thread in Path(f"/proc/{worker.pid}/task").iterdir():
            try:
                os.sched_setaffinity(int(thread.name), {cpus[index % len(cpus)]})
            except ProcessLookupError:  # a thread that ended meanwhile
                pass


def measure(num_workers: int, folder: str, model: str, warm_up: int, repeats: int,
            settings: dict[str, str], pin: bool) -> dict:
    import deepframes
    from deepframes import standalone

    state = tempfile.mkdtemp(prefix=f"deepframes-scaling-{num_workers}-")
    info = standalone.start_cluster(num_workers, 1, "1g", state_dir=state)
    try:
        if pin:
            pin_workers(info.processes)
        spark = deepframes.session(info.master_url, app_name=f"bench-scaling-{num_workers}", **{
            "spark.executor.memory": "1g", "spark.executor.cores": "1", "spark.driver.memory": "2g",
            "spark.ui.showConsoleProgress": "false",
            # Wait for every worker's executor before the first job (Spark's own setting).
            "spark.cores.max": str(num_workers), "spark.scheduler.minRegisteredResourcesRatio": "1.0",
            **settings,
        })
        try:
            count = featurize_job(spark, folder, model).count()
            seconds = []
            for run in range(warm_up + repeats):
                started = time.perf_counter()
                featurize_job(spark, folder, model).write.format("noop").mode("overwrite").save()
                if run >= warm_up:
                    seconds.append(time.perf_counter() - started)
            executors = spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1
        finally:
            spark.stop()
    finally:
        standalone.stop_cluster(state, missing_ok=True)
    median = statistics.median(seconds)
    return {"workers": num_workers, "executors": executors, "images": count, "seconds": round(median, 2),
            "images_per_s": round(count / median, 1), "runs": [round(s, 2) for s in seconds]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=str(SHARED / "data" / "pets" / "images"))
    parser.add_argument("--model", default=str(SHARED / "models" / "squeezenet1.1.onnx"))
    parser.add_argument("--warm-up", type=int, default=2,
                        help="untimed runs first: the driver's JIT still compiles Spark's planning code "
                             "in the second run, and on one machine it takes CPU from the workers")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--default-jit", action="store_true",
                        help="leave the executors' JIT at Java's defaults instead of deepframes' PATIENT_JIT")
    parser.add_argument("--no-pin", action="store_true",
                        help="let the workers share every core instead of one core each (CPU affinity)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    settings = {} if args.default_jit else PATIENT_JIT
    rows = [measure(workers, args.images, args.model, args.warm_up, args.repeats, settings, not args.no_pin)
            for workers in (1, 2)]
    one, two = rows
    efficiency = two["images_per_s"] / (2 * one["images_per_s"])
    print(f"{'workers':>7}  {'executors':>9}  {'images':>6}  {'seconds':>7}  {'images/s':>8}")
    for row in rows:
        print(f"{row['workers']:>7}  {row['executors']:>9}  {row['images']:>6}  {row['seconds']:>7.2f}  "
              f"{row['images_per_s']:>8.1f}")
    print(f"workers: {'sharing every core' if args.no_pin else 'one core each (worker i and its children on CPU i)'}")
    print(f"executors' JIT: {'Java defaults' if args.default_jit else 'PATIENT_JIT (C2 thresholds x10)'}; "
          f"{args.warm_up} warm-up run(s), median of {args.repeats}")
    print(f"scaling efficiency (2 workers / (2 x 1 worker)): {efficiency:.3f} "
          f"(target >= 0.85: {'met' if efficiency >= 0.85 else 'NOT met'})")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "efficiency": round(efficiency, 3)}, indent=2))


if __name__ == "__main__":
    main()
