"""Daft peer for bench/featurize.py: SqueezeNet features of the pet photos, best configuration.

    bench/.venv-peers/bin/python bench/peers/daft_featurize.py [--repeats 3] [--decode pillow|native]

``daft.from_glob_path`` lists the files, ``col("path").download()`` reads them, and a ``@daft.cls``
batch UDF (2 instances in their own processes, ONNX Runtime with 1 intra-op thread each, batches of
32) runs the model. ``--decode pillow`` (default) decodes inside the UDF with Pillow's JPEG draft
mode, the same work as deepframes; ``--decode native`` uses Daft's own Rust decoder and resize
(``.decode_image(mode="RGB").resize(224, 224)``, full-size decode) before the UDF.
Prints one JSON line: median seconds over --repeats after one warm-up run, and the row count.
``--write DIR`` instead runs the job once, as a user would from a cold process, and writes
``path, features`` to Parquet in DIR (bench/cold.py times the whole process from outside).
"""

from __future__ import annotations

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# The UDF processes unpickle functions that refer to `common`: let them import it too.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [HERE, os.environ.get("PYTHONPATH")]))
os.environ.setdefault("DAFT_PROGRESS_BAR", "0")
os.environ.setdefault("DAFT_ANALYTICS_ENABLED", "0")
os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import common  # noqa: E402

INSTANCES = 2


def main() -> None:
    parser = common.arguments(__doc__.splitlines()[0])
    parser.add_argument("--decode", choices=["pillow", "native"], default="pillow")
    parser.add_argument("--write", help="run once, cold, and write Parquet to this folder")
    parser.add_argument("--recursive", action="store_true", help="also look in subfolders of --images")
    args = parser.parse_args()

    import daft
    import numpy as np
    import pyarrow as pa
    from daft import DataType, col

    features_type = DataType.fixed_size_list(DataType.float32(), 512)

    @daft.cls(max_concurrency=INSTANCES, use_process=True, cpus=1)
    class SqueezeNet:
        def __init__(self, model: str):
            self.session = common.ort_session(model, threads=1)

        def _features(self, batch: np.ndarray) -> pa.Array:
            features = self.session.run(["features"], {"data_0": batch})[0].astype(np.float32)
            return pa.FixedSizeListArray.from_arrays(pa.array(features.ravel()), 512)

        @daft.method.batch(return_dtype=features_type, batch_size=common.BATCH)
        def from_bytes(self, content: daft.Series) -> pa.Array:
            return self._features(np.stack([common.preprocess(data) for data in content.to_pylist()]))

        @daft.method.batch(return_dtype=features_type, batch_size=common.BATCH)
        def from_pixels(self, image: daft.Series) -> pa.Array:
            return self._features(np.stack([common.pixels_to_input(pixels) for pixels in image.to_pylist()]))

    model = SqueezeNet(args.model)
    pattern = os.path.join(os.path.abspath(args.images), "**/*.jpg" if args.recursive else "*.jpg")

    def featurized():
        files = daft.from_glob_path(pattern)
        content = col("path").download()
        if args.decode == "pillow":
            features = model.from_bytes(content)
        else:
            features = model.from_pixels(content.decode_image(mode="RGB").resize(common.SIZE, common.SIZE))
        return files.select(col("path"), features.alias("features"))

    def run() -> int:
        return len(featurized().collect())

    if args.write:
        featurized().write_parquet(args.write)
        print(json.dumps({"engine": "daft", "version": daft.__version__, "decode": args.decode}), flush=True)
        return

    seconds, rows = common.measure(run, args.repeats)
    config = (f"from_glob_path + download + {args.decode} decode + @daft.cls batch UDF, "
              f"{INSTANCES} processes x 1 ORT thread, batch {common.BATCH}")
    common.report("daft", daft.__version__, seconds, rows, args.repeats, config)


if __name__ == "__main__":
    main()
