"""Benchmark: the first run a user makes, from a cold process to Parquet written, with memory.

The job: SqueezeNet 1.1 features of the shared pet photos (or that folder linked several times
under distinct names, for --counts above 600), ``path`` and ``features`` written to Parquet.
Each contender runs in a fresh process, timed from its start to its exit (when a user's shell
prompt returns); the whole process tree's PSS (the driver, Spark's JVM, the Python workers,
Daft's UDF processes) is summed every 0.2 s until then and its peak kept. Contenders
alternate within each round, so a busy moment of the machine does not fall on one of them.

Contenders:
  api          deepframes' Python API: ``session()`` + ``read_images(decode=False)`` +
               ``ImageFeaturizer`` + ``write.parquet`` (bench/cold.py --job api)
  cli          ``deepframes featurize IMAGES --weights MODEL --out OUT`` (labels from file names)
  daft-native  Daft 0.7: ``download().decode_image(mode="RGB").resize(224, 224)`` (its Rust decoder)
               and a @daft.cls batch UDF, 2 processes x 1 ORT thread; ``write_parquet``
  daft-pillow  the same UDF decoding with Pillow's JPEG draft mode, as deepframes does

Daft runs from bench/.venv-peers (`make bench-peers`) on the features-only graph (deepframes cuts
the graph itself); it is judged by its faster configuration at each count. Judged: deepframes'
wall time and peak memory over Daft's (targets <= 1.5 at 600 photos), the CLI's extra seconds over
the API (<= 1 s), and throughput at the largest count (deepframes >= Daft).

    .venv/bin/python bench/cold.py [--counts 600,2000,6000] [--rounds 3] [--only api,cli,daft-native,daft-pillow]
                                   [--json out.json] [--plot cold.png]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from featurize import features_graph  # noqa: E402  (the graph Daft gets, as in bench/featurize.py)
ROOT = HERE.parent
SHARED = ROOT.parent / "shared"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
PEERS_PYTHON = HERE / ".venv-peers" / "bin" / "python"

NAMES = {
    "api": "deepframes Python API (session + read_images + ImageFeaturizer)",
    "cli": "deepframes featurize (CLI)",
    "daft-native": "Daft, native decode + resize",
    "daft-pillow": "Daft, Pillow draft decode in the UDF",
}
OURS = ("api", "cli")
DAFT = ("daft-native", "daft-pillow")
SAMPLE_SECONDS = 0.2
TIMEOUT_SECONDS = 900


# --- the process tree's memory ---------------------------------------------------------------

def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    return children


def tree(root: int) -> list[int]:
    """``root`` and every process below it (Spark's JVM runs in a session of its own, but it is
    still the driver's child)."""
    children, found, stack = _children(), [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class TreeMemory:
    """Samples the summed PSS of a process tree every 0.2 s in a thread; ``peak_gb`` once stopped."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, sum(pss_kb(pid) for pid in tree(self.root)))
            self._stop.wait(SAMPLE_SECONDS)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_kb / 1024 / 1024


# --- the contenders ----------------------------------------------------------------------------

def command(key: str, images: str, model: str, features_only: str, out: str, recursive: bool) -> list[str]:
    if key == "api":
        return [str(VENV_PYTHON), str(Path(__file__).resolve()), "--job", "api", "--images", images,
                "--model", model, "--out", out]
    if key == "cli":
        return [str(ROOT / ".venv" / "bin" / "deepframes"), "featurize", images, "--weights", model, "--out", out]
    decode = key.split("-", 1)[1]
    return [str(PEERS_PYTHON), str(HERE / "peers" / "daft_featurize.py"), "--images", images, "--model",
            features_only, "--decode", decode, "--write", out] + (["--recursive"] if recursive else [])


def run_once(argv: list[str], out: str, scratch: Path) -> tuple[float, float, int]:
    """Seconds from process start to its exit (when a user's shell prompt returns), the tree's
    peak PSS in GB until then, and the rows written. Processes the contender left behind (a JVM
    still shutting down) are waited for, untimed, so that contenders never overlap."""
    environment = {**os.environ, "PYTHONWARNINGS": "ignore"}
    log = scratch / "contender.log"
    with open(log, "w") as output:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
                                   env=environment)
        _RUNNING.append(process)
        memory = TreeMemory(process.pid)
        try:
            process.wait(timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise RuntimeError(f"{argv[:3]} did not finish in {TIMEOUT_SECONDS} s")
        finally:
            seconds = time.perf_counter() - started
            peak = memory.stop()
            _wait_for_group(process.pid)
            _RUNNING.remove(process)
    if process.returncode != 0:
        tail = "\n".join(log.read_text().strip().splitlines()[-8:])
        raise RuntimeError(f"{' '.join(argv[:3])} failed with exit code {process.returncode}:\n{tail}")
    return seconds, peak, written_rows(out)


_RUNNING: list[subprocess.Popen] = []


def _group_alive(group: int) -> bool:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) == group:
                return True
        except (OSError, ValueError, IndexError):
            continue
    return False


def _wait_for_group(group: int, timeout: float = 60.0) -> None:
    """Wait until no process of the contender's session is left (SIGKILL after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while _group_alive(group):
        if time.monotonic() > deadline:
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + timeout
        time.sleep(0.1)


def _stop_running(signum, frame) -> None:
    """SIGTERM or SIGINT: stop the contender's whole process group, then let clean-up run."""
    for process in list(_RUNNING):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    raise SystemExit(128 + signum)


def written_rows(out: str) -> int:
    import pyarrow.parquet as pq

    return pq.read_table(out, columns=["path"]).num_rows


def api_job(images: str, model: str, out: str) -> None:
    """What a user types: the contender ``api``, run in its own process."""
    import deepframes

    deepframes.session()
    files = deepframes.read_images(images, decode=False)
    featurizer = deepframes.ImageFeaturizer(inputCol="content", model="squeezenet1.1", weights=model)
    featurizer.transform(files).select("path", "features").write.parquet(out)


# --- photo folders of any size -----------------------------------------------------------------

def photo_folder(source: Path, count: int, scratch: Path) -> tuple[str, bool]:
    """A folder of ``count`` photos (the source's own when the count matches, else links to its
    photos in subfolders ``copy0, copy1, ...`` under the same names) and whether it has subfolders."""
    photos = sorted(source.glob("*.jpg"))
    if count == len(photos):
        return str(source), False
    folder = scratch / f"photos-{count}"
    for index in range(count):
        copy = folder / f"copy{index // len(photos)}"
        copy.mkdir(parents=True, exist_ok=True)
        (copy / photos[index % len(photos)].name).symlink_to(photos[index % len(photos)])
    return str(folder), True


# --- the run and its report --------------------------------------------------------------------

def measure(keys: list[str], counts: list[int], rounds: int, images: Path, model: str) -> dict:
    results: dict[int, dict[str, list[tuple[float, float]]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as scratch_name:
        scratch = Path(scratch_name)
        features_only = features_graph(model)
        for count in counts:
            folder, recursive = photo_folder(images, count, scratch)
            results[count] = {key: [] for key in keys}
            for round_index in range(rounds):
                for key in keys:
                    out = str(scratch / f"out-{key}-{count}-{round_index}")
                    seconds, peak, rows = run_once(command(key, folder, model, features_only, out, recursive), out,
                                                   scratch)
                    if rows != count:
                        raise RuntimeError(f"{key} wrote {rows} rows for {count} photos")
                    results[count][key].append((seconds, peak))
                    shutil.rmtree(out, ignore_errors=True)
                    print(f"  {count:>6} photos, round {round_index + 1}: {key:<12} {seconds:6.2f} s "
                          f"{peak:5.2f} GB", flush=True)
    return results


def medians(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(s for s, _ in runs), statistics.median(m for _, m in runs)


def report(results: dict, rounds: int) -> dict:
    print(f"\ncold benchmark: process start to Parquet written, median of {rounds} alternating rounds; "
          "peak PSS of the whole process tree\n")
    print(f"| {'photos':>6} | {'contender':<66} | wall s | photos/s | peak GB |")
    print(f"|-------:|{'-' * 68}|-------:|---------:|--------:|")
    judged: dict = {}
    for count, by_key in results.items():
        for key, runs in by_key.items():
            seconds, peak = medians(runs)
            print(f"| {count:>6} | {NAMES[key]:<66} | {seconds:6.2f} | {count / seconds:8.1f} | {peak:7.2f} |")
    for count, by_key in results.items():
        daft = [key for key in DAFT if key in by_key]
        if not daft:
            continue
        best = min(daft, key=lambda key: medians(by_key[key])[0])
        daft_seconds, daft_peak = medians(by_key[best])
        print(f"\n{count} photos, judged against Daft's faster configuration ({best}: "
              f"{daft_seconds:.2f} s, {daft_peak:.2f} GB):")
        for key in OURS:
            if key not in by_key:
                continue
            seconds, peak = medians(by_key[key])
            entry = {"wall_ratio": seconds / daft_seconds, "memory_ratio": peak / daft_peak,
                     "throughput_ratio": daft_seconds / seconds, "against": best}
            judged.setdefault(count, {})[key] = entry
            print(f"  {key}: wall {entry['wall_ratio']:.2f}x Daft (target <= 1.5: "
                  f"{_met(entry['wall_ratio'] <= 1.5)}), memory {entry['memory_ratio']:.2f}x "
                  f"(target <= 1.5: {_met(entry['memory_ratio'] <= 1.5)}), throughput "
                  f"{entry['throughput_ratio']:.2f}x Daft's")
        if "api" in by_key and "cli" in by_key:
            extra = medians(by_key["cli"])[0] - medians(by_key["api"])[0]
            judged.setdefault(count, {})["cli_extra_seconds"] = extra
            print(f"  the CLI over the API: {extra:+.2f} s (target <= 1 s: {_met(extra <= 1.0)})")
    largest = max(results)
    if largest in judged and "api" in judged[largest]:
        ratio = judged[largest]["api"]["throughput_ratio"]
        print(f"\nAt {largest} photos, deepframes' throughput over Daft's: {ratio:.2f} "
              f"(target >= 1.0: {_met(ratio >= 1.0)})")
    return judged


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    counts = sorted(results)
    for key in [key for key in NAMES if key in results[counts[0]]]:
        axis.plot(counts, [medians(results[count][key])[0] for count in counts], marker="o", label=NAMES[key])
    axis.set_xlabel("photos")
    axis.set_ylabel("seconds, cold process to Parquet written")
    axis.set_title("SqueezeNet features from a cold start, 2 cores")
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    print(f"plot written to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=str(SHARED / "data" / "pets" / "images"))
    parser.add_argument("--model", default=str(SHARED / "models" / "squeezenet1.1.onnx"))
    parser.add_argument("--counts", default="600", help="photo counts, comma-separated (default 600)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default=",".join(NAMES), help=f"of {','.join(NAMES)}")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--plot", help="write a plot of wall time against photo count (PNG)")
    parser.add_argument("--job", choices=["api"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job == "api":
        api_job(args.images, args.model, args.out)
        return
    keys = [key.strip() for key in args.only.split(",") if key.strip()]
    unknown = sorted(set(keys) - set(NAMES))
    if unknown:
        parser.error(f"unknown contender(s) {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    if any(key in DAFT for key in keys) and not PEERS_PYTHON.exists():
        print("(Daft not installed: run make bench-peers; Daft skipped)", flush=True)
        keys = [key for key in keys if key not in DAFT]
    counts = [int(count) for count in args.counts.split(",")]
    signal.signal(signal.SIGTERM, _stop_running)
    signal.signal(signal.SIGINT, _stop_running)
    results = measure(keys, counts, args.rounds, Path(args.images), args.model)
    judged = report(results, args.rounds)
    if args.plot and len(counts) > 1:
        plot(results, args.plot)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "rounds": args.rounds,
            "results": {str(count): {key: {"runs": runs, "median_seconds": medians(runs)[0],
                                           "median_peak_gb": medians(runs)[1]}
                                     for key, runs in by_key.items()} for count, by_key in results.items()},
            "judged": {str(count): entry for count, entry in judged.items()},
        }, indent=2))


if __name__ == "__main__":
    sys.exit(main())
