"""Benchmark: one long featurize job at growing scale, and what a SIGKILL half-way costs with --resume.

The job: ``deepframes featurize FOLDER --weights squeezenet1.1.onnx --out OUT --json`` on local[2],
a fresh process each time, over the shared pets (600 photos) and that folder linked 10 and 100
times under distinct paths (6,000 and 60,000 photos). For each count: wall time from process
start to exit, the job's own throughput (images over the seconds ``featurize`` reports, which
leave out the session's start), the driver's peak PSS (the Python driver and Spark's JVM) and
the whole process tree's (with the Python workers), sampled every 0.2 s.

Then the resume cost, at --resume-count photos: the same job killed with SIGKILL (the whole
process group: driver, JVM, workers, no clean-up) half-way through its featurizing, then run
again with ``--resume``. The time lost is (killed run + resumed run) - uninterrupted run; it
must stay within the work that was in flight (two tasks of at most 256 photos at the measured
rate) plus one restart: the fixed cost of a run whatever its size (the session, the listing, the
workers and the JIT warming up), the intercept of wall time against photos through the two
smallest runs. The resumed output is checked: every photo once.

Judged: throughput at the largest count >= 0.9x the 6,000-photo figure; tree and driver peak
memory at the largest count <= 1.1x the 6,000-photo figures; time lost <= that bound.

    .venv/bin/python bench/scale.py [--counts 600,6000,60000] [--resume-count 6000] [--json out.json]
                                    [--plot docs/scale.png]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import cold  # noqa: E402  (the process-tree sampling and photo folders of bench/cold.py)

DEEPFRAMES = ROOT / ".venv" / "bin" / "deepframes"
SHARED = ROOT.parent / "shared"
IN_FLIGHT_TASKS = 2  # local[2]: two tasks run at once
FILES_PER_TASK = 256  # read_images' MAX_ENCODED_FILES_PER_PARTITION


class DriverAndTree:
    """Peak PSS (GB) of a process tree and of its driver part (the root and the JVM), sampled."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak_tree_kb = self.peak_driver_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _is_driver(self, pid: int) -> bool:
        if pid == self.root:
            return True
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].endswith(b"java")
        except OSError:
            return False

    def _sample(self) -> None:
        while not self._stop.is_set():
            sizes = {pid: cold.pss_kb(pid) for pid in cold.tree(self.root)}
            self.peak_tree_kb = max(self.peak_tree_kb, sum(sizes.values()))
            self.peak_driver_kb = max(self.peak_driver_kb, sum(kb for pid, kb in sizes.items() if self._is_driver(pid)))
            self._stop.wait(cold.SAMPLE_SECONDS)

    def stop(self) -> tuple[float, float]:
        self._stop.set()
        self._thread.join()
        return self.peak_driver_kb / 1024 / 1024, self.peak_tree_kb / 1024 / 1024


def featurize(folder: str, out: str, *, resume: bool = False, kill_after: float | None = None) -> dict:
    """Run the CLI once; its JSON result with wall seconds and peak memory, or, killed after
    ``kill_after`` seconds, the wall seconds until the kill."""
    argv = [str(DEEPFRAMES), "featurize", folder, "--weights", str(SHARED / "models" / "squeezenet1.1.onnx"),
            "--out", out, "--master", "local[2]", "--json"] + (["--resume"] if resume else [])
    # A run killed with SIGKILL cannot remove its temporary files: they go under the out folder's
    # parent, the benchmark's scratch folder (TMPDIR, which the driver, its JVM and workers use).
    temporary = Path(out).parent / "tmp"
    temporary.mkdir(exist_ok=True)
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               start_new_session=True,
                               env={**os.environ, "PYTHONWARNINGS": "ignore", "TMPDIR": str(temporary)})
    cold._RUNNING.append(process)
    memory = DriverAndTree(process.pid)
    try:
        if kill_after is not None:
            try:
                process.wait(timeout=kill_after)
                raise RuntimeError(f"the job finished before the kill at {kill_after:.1f} s")
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return {"wall": time.perf_counter() - started}
        stdout, _ = process.communicate(timeout=cold.TIMEOUT_SECONDS * 10)
    finally:
        driver, whole = memory.stop()
        cold._wait_for_group(process.pid)
        cold._RUNNING.remove(process)
    if process.returncode != 0:
        raise RuntimeError(f"featurize failed with exit code {process.returncode}: {stdout[-2000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    return {**result, "wall": time.perf_counter() - started, "driver_gb": driver, "tree_gb": whole}


def scaling(counts: list[int], scratch: Path) -> dict[int, dict]:
    results = {}
    for count in counts:
        folder = photos(count, scratch)
        out = str(scratch / f"features-{count}")
        run = featurize(folder, out)
        if run["num_images"] != count:
            raise RuntimeError(f"{count} photos gave {run['num_images']} rows")
        run["rate"] = run["num_images"] / run["seconds"]
        results[count] = run
        print(f"  {count:>6} photos: {run['wall']:.1f} s wall, {run['rate']:.1f} images/s, "
              f"driver {run['driver_gb']:.2f} GB, tree {run['tree_gb']:.2f} GB", flush=True)
        cold.shutil.rmtree(out, ignore_errors=True)
    return results


def photos(count: int, scratch: Path) -> str:
    """The folder of ``count`` photos in ``scratch``, made once."""
    made = scratch / f"photos-{count}"
    return str(made) if made.exists() else cold.photo_folder(SHARED / "data" / "pets" / "images", count, scratch)[0]


def fixed_cost(runs: dict[int, dict]) -> float:
    """What starting the job again costs, whatever its size: the intercept of wall time against
    photos through the two smallest runs (the session, the listing, the workers and the JIT
    warming up; a run's own 'seconds' leave out only the session)."""
    if len(runs) < 2:
        (only,) = runs.values()
        return only["wall"] - only["seconds"]
    small, large = sorted(runs)[:2]
    per_photo = (runs[large]["wall"] - runs[small]["wall"]) / (large - small)
    return runs[small]["wall"] - per_photo * small


def resume_cost(count: int, uninterrupted: dict, restart: float, scratch: Path) -> dict:
    """Kill the job half-way through its featurizing, resume it; the time lost and its bound."""
    folder = photos(count, scratch)
    out = str(scratch / f"resumed-{count}")
    session = uninterrupted["wall"] - uninterrupted["seconds"]
    killed = featurize(folder, out, kill_after=session + uninterrupted["seconds"] / 2)
    resumed = featurize(folder, out, resume=True)
    import pyarrow.parquet as pq

    paths = pq.read_table(out, columns=["path"]).column("path").to_pylist()
    if len(paths) != count or len(set(paths)) != count:
        raise RuntimeError(f"the resumed output has {len(paths)} rows for {len(set(paths))} photos; expected {count}")
    lost = killed["wall"] + resumed["wall"] - uninterrupted["wall"]
    in_flight = IN_FLIGHT_TASKS * FILES_PER_TASK / uninterrupted["rate"]
    cold.shutil.rmtree(out, ignore_errors=True)
    return {"count": count, "killed_at": killed["wall"], "resumed_wall": resumed["wall"], "done_before": resumed["num_resumed"],
            "uninterrupted_wall": uninterrupted["wall"], "lost": lost, "bound": restart + in_flight,
            "restart": restart, "in_flight": in_flight}


def report(results: dict[int, dict], resumed: dict | None) -> dict:
    print("\n| photos | wall (s) | featurizing (s) | images/s | driver peak (GB) | tree peak (GB) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for count, run in results.items():
        print(f"| {count:,} | {run['wall']:.1f} | {run['seconds']:.1f} | {run['rate']:.1f} | "
              f"{run['driver_gb']:.2f} | {run['tree_gb']:.2f} |")
    verdicts = {}
    largest = max(results)
    if 6000 in results and largest > 6000:
        base, top = results[6000], results[largest]
        verdicts["throughput"] = top["rate"] / base["rate"]
        verdicts["tree_memory"] = top["tree_gb"] / base["tree_gb"]
        verdicts["driver_memory"] = top["driver_gb"] / base["driver_gb"]
        print(f"\nthroughput at {largest:,} / at 6,000: {verdicts['throughput']:.2f} (target >= 0.90) "
              f"{cold._met(verdicts['throughput'] >= 0.9)}")
        print(f"tree peak at {largest:,} / at 6,000: {verdicts['tree_memory']:.2f} (target <= 1.10) "
              f"{cold._met(verdicts['tree_memory'] <= 1.1)}")
        print(f"driver peak at {largest:,} / at 6,000: {verdicts['driver_memory']:.2f} (target <= 1.10) "
              f"{cold._met(verdicts['driver_memory'] <= 1.1)}")
    if resumed is not None:
        print(f"\nSIGKILL at {resumed['killed_at']:.1f} s of a {resumed['uninterrupted_wall']:.1f} s job "
              f"({resumed['count']:,} photos), then --resume ({resumed['done_before']:,} done before, "
              f"{resumed['resumed_wall']:.1f} s): {resumed['lost']:.1f} s lost; bound {resumed['bound']:.1f} s "
              f"(restart, a run's fixed cost, {resumed['restart']:.1f} s + in flight {resumed['in_flight']:.1f} s) "
              f"{cold._met(resumed['lost'] <= resumed['bound'])}")
        verdicts["resume_lost_over_bound"] = resumed["lost"] / resumed["bound"]
    return verdicts


def plot(results: dict[int, dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = list(results)
    figure, (rate_axis, memory_axis) = plt.subplots(1, 2, figsize=(10, 4))
    rate_axis.plot(counts, [results[c]["rate"] for c in counts], "o-", color="tab:blue")
    rate_axis.set(xscale="log", xlabel="photos", ylabel="images/s (featurizing)", title="Throughput, local[2]",
                  ylim=(0, max(results[c]["rate"] for c in counts) * 1.2))
    memory_axis.plot(counts, [results[c]["tree_gb"] for c in counts], "o-", label="whole process tree")
    memory_axis.plot(counts, [results[c]["driver_gb"] for c in counts], "s-", label="driver (Python + JVM)")
    memory_axis.set(xscale="log", xlabel="photos", ylabel="peak PSS (GB)", title="Peak memory",
                    ylim=(0, max(results[c]["tree_gb"] for c in counts) * 1.3))
    memory_axis.legend()
    for axis in (rate_axis, memory_axis):
        axis.grid(alpha=0.3)
    figure.suptitle("deepframes featurize, SqueezeNet 1.1, 2 cores")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="600,6000,60000")
    parser.add_argument("--resume-count", type=int, default=6000, help="0: skip the resume run")
    parser.add_argument("--json")
    parser.add_argument("--plot")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, cold._stop_running)
    counts = [int(text) for text in args.counts.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch_name:
        scratch = Path(scratch_name)
        print(f"deepframes featurize at {', '.join(f'{c:,}' for c in counts)} photos, local[2]:", flush=True)
        results = scaling(counts, scratch)
        resumed = None
        if args.resume_count:
            if args.resume_count not in results:
                results_for_resume = scaling([args.resume_count], scratch)[args.resume_count]
            else:
                results_for_resume = results[args.resume_count]
            resumed = resume_cost(args.resume_count, results_for_resume, fixed_cost(results), scratch)
    verdicts = report(results, resumed)
    if args.plot:
        plot(results, args.plot)
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": {str(k): v for k, v in results.items()}, "resume": resumed,
                                               "verdicts": verdicts}, indent=2, default=str))


if __name__ == "__main__":
    main()
