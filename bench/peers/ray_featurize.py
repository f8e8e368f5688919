"""Ray Data peer for bench/featurize.py: SqueezeNet features of the pet photos, best configuration.

    bench/.venv-peers/bin/python bench/peers/ray_featurize.py [--repeats 3]

``ray.init(num_cpus=2)`` on this machine, ``ray.data.read_binary_files`` reads the files, and
``map_batches`` with an actor class (2 actors asking for 0.75 CPU each, the reads for 0.25; ONNX
Runtime with 1 intra-op thread per actor, batches of 32) decodes them with Pillow's JPEG draft mode
(the same work as deepframes) and runs the model. Prints one JSON line: median seconds over --repeats after one warm-up run, and the row
count. Ray is shut down at the end (no raylet is left behind).
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# Ray's workers unpickle functions that refer to `common`: let them import it too.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [HERE, os.environ.get("PYTHONPATH")]))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

import common  # noqa: E402

ACTORS = 2
READ_CPUS = 0.25


class SqueezeNet:
    def __init__(self, model: str):
        self.session = common.ort_session(model, threads=1)

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        inputs = np.stack([common.preprocess(data) for data in batch["bytes"]])
        return {"path": batch["path"], "features": self.session.run(["features"], {"data_0": inputs})[0]}


def main() -> None:
    args = common.arguments(__doc__.splitlines()[0]).parse_args()

    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=512 * 1024 * 1024)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        files = common.image_files(args.images)

        def run() -> int:
            # Two actors of 1 CPU would hold both CPUs and the read tasks (1 CPU each by default)
            # would wait forever; reads asking for 0 CPU start a Python worker per block. So the
            # actors ask for 0.75 CPU and the reads for 0.25 (reading bytes is cheap I/O).
            dataset = ray.data.read_binary_files(
                files, include_paths=True, num_cpus=READ_CPUS,
                override_num_blocks=len(files) // common.BATCH,
            ).map_batches(
                SqueezeNet, fn_constructor_args=(args.model,), batch_size=common.BATCH,
                batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=ACTORS), num_cpus=1 - READ_CPUS)
            return sum(len(batch["features"]) for batch in dataset.iter_batches(batch_size=None))

        seconds, rows = common.measure(run, args.repeats)
        config = (f"read_binary_files ({READ_CPUS} CPU) + map_batches actor class, {ACTORS} actors x "
                  f"{1 - READ_CPUS} CPU x 1 ORT thread, "
                  f"Pillow draft decode, batch {common.BATCH}, num_cpus=2")
        common.report("ray-data", ray.__version__, seconds, rows, args.repeats, config)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
