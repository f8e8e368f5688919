"""Benchmark: SqueezeNet features for the 600 shared pet photos, three ways, in one run.

(a) deepframes: read_images(decode=False) + ImageFeaturizer, on local[2] (files decoded inside
    the featurizer's batches, straight to 224x224); (a2) the same with read_images(size=224)
    decoding into image structs first (shown, not judged).
(b) one plain Python process: Pillow decode + resize + ONNX Runtime with 2 threads, batch 32.
(c) the built-in Spark way: binaryFile + a pandas decode UDF + pyspark.ml.functions.predict_batch_udf.

Prints images/s, the ratios a/b (target >= 0.9) and a/c (target >= 2.0), and the peak memory
(RSS) of each contender's Python processes. Spark contenders run in fresh sessions, once to
warm up and then --repeats times (median).

    .venv/bin/python bench/featurize.py [--images DIR] [--model FILE] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import resource
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

SHARED = Path(__file__).resolve().parents[2] / "shared"
MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)
BATCH = 32


def _preprocess(data: bytes) -> np.ndarray:
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB").resize((224, 224), Image.BILINEAR)
    return (np.asarray(image, dtype=np.float32)[:, :, ::-1] - MEAN_BGR).transpose(2, 0, 1)


def single_process(folder: str, model: str, repeats: int) -> tuple[float, float]:
    """(b): seconds (median) and peak RSS in MB of a plain process doing the same work."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    files = sorted(Path(folder).glob("*.jpg"))

    def run() -> int:
        count = 0
        for start in range(0, len(files), BATCH):
            batch = np.stack([_preprocess(path.read_bytes()) for path in files[start:start + BATCH]])
            count += len(session.run(["features"], {"data_0": batch})[0])
        return count

    run()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _worker_peak_mb(spark) -> float:
    """Peak RSS (VmHWM) of the largest PySpark Python worker alive now (workers are reused, so
    they are the ones that ran the job)."""
    peak_kb = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            cmdline = (status.parent / "cmdline").read_bytes()
            if b"pyspark.daemon" not in cmdline and b"pyspark.worker" not in cmdline:
                continue
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
            peak_kb = max(peak_kb, int(fields.get("VmHWM", "0 kB").split()[0]))
        except (OSError, ValueError):
            continue
    return peak_kb / 1024


def spark_contender(kind: str, folder: str, model: str, repeats: int) -> tuple[float, float, int]:
    import deepframes

    spark = deepframes.session("local[2]", app_name=f"bench-featurize-{kind}",
                               **{"spark.ui.showConsoleProgress": "false"})
    try:
        make = {"deepframes": functools.partial(_deepframes_job, decode=False),
                "deepframes-structs": functools.partial(_deepframes_job, decode=True),
                "builtin": _builtin_job}[kind]
        count = make(spark, folder, model).count()  # warm-up, and the rows it produces
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            make(spark, folder, model).write.format("noop").mode("overwrite").save()
            seconds.append(time.perf_counter() - started)
        return statistics.median(seconds), _worker_peak_mb(spark), count
    finally:
        spark.stop()


def _deepframes_job(spark, folder, model, decode):
    import deepframes

    if decode:
        images, column = deepframes.read_images(folder, size=(224, 224), spark=spark), "image"
    else:
        images, column = deepframes.read_images(folder, decode=False, spark=spark), "content"
    featurizer = deepframes.ImageFeaturizer(inputCol=column, model="squeezenet1.1", weights=model,
                                            batchSize=BATCH)
    return featurizer.transform(images).select("path", "features")


def _builtin_job(spark, folder, model):
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, FloatType

    @F.pandas_udf(ArrayType(FloatType()))
    def decode(content: pd.Series) -> pd.Series:
        return content.map(lambda data: _preprocess(data).ravel())

    def make_predict_fn():
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

        def predict(inputs: np.ndarray) -> np.ndarray:
            return session.run(["features"], {"data_0": inputs.reshape(-1, 3, 224, 224)})[0]

        return predict

    features = predict_batch_udf(make_predict_fn, return_type=ArrayType(FloatType()), batch_size=BATCH,
                                 input_tensor_shapes=[[3 * 224 * 224]])
    files = spark.read.format("binaryFile").option("pathGlobFilter", "*.jpg").load(folder)
    return files.select("path", features(decode("content")).alias("features"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=str(SHARED / "data" / "pets" / "images"))
    parser.add_argument("--model", default=str(SHARED / "models" / "squeezenet1.1.onnx"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    num_images = len(list(Path(args.images).glob("*.jpg")))

    with ProcessPoolExecutor(max_workers=1) as pool:
        plain_seconds, plain_peak = pool.submit(single_process, args.images, args.model, args.repeats).result()
    ours_seconds, ours_peak, ours_rows = spark_contender("deepframes", args.images, args.model, args.repeats)
    structs_seconds, structs_peak, _ = spark_contender("deepframes-structs", args.images, args.model, args.repeats)
    builtin_seconds, builtin_peak, builtin_rows = spark_contender("builtin", args.images, args.model, args.repeats)
    assert ours_rows == builtin_rows == num_images, (ours_rows, builtin_rows, num_images)

    rows = [
        ("(a) deepframes read_images(decode=False) + ImageFeaturizer", ours_seconds, ours_peak),
        ("(a2) deepframes read_images(size=224) + ImageFeaturizer", structs_seconds, structs_peak),
        ("(b) one Python process, ONNX Runtime 2 threads", plain_seconds, plain_peak),
        ("(c) binaryFile + pandas UDF + predict_batch_udf, local[2]", builtin_seconds, builtin_peak),
    ]
    print(f"\nfeaturize benchmark: SqueezeNet 1.1 features of {num_images} pet photos, batch {BATCH}, "
          f"median of {args.repeats}\n")
    print(f"| {'contender':<58} | seconds | images/s | peak MB per Python process |")
    print(f"|{'-' * 60}|---------|----------|----------------------------|")
    for name, seconds, peak in rows:
        print(f"| {name:<58} | {seconds:>7.2f} | {num_images / seconds:>8.1f} | {peak:>26.0f} |")
    a_b, a_c = plain_seconds / ours_seconds, builtin_seconds / ours_seconds
    print(f"\nJudged ratios: a/b = {a_b:.2f} (target >= 0.9: {'met' if a_b >= 0.9 else 'NOT met'}); "
          f"a/c = {a_c:.2f} (target >= 2.0: {'met' if a_c >= 2.0 else 'NOT met'})")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "a_b": a_b, "a_c": a_c}, indent=2))
    print("(a) decodes each file inside the featurizer's batches, so pixels never go back through the JVM; "
          "(a2) decodes in read_images and ships image structs to the featurizer (not judged).")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
