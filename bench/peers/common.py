"""What the peer scripts share: the same Pillow draft-mode preprocessing deepframes does, the
timing loop (one warm-up run, then the median of --repeats), and the one JSON line they print.

Only the standard library, numpy and Pillow: the peer scripts run in bench/.venv-peers, where
deepframes is not installed.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np

SHARED = Path(__file__).resolve().parents[3] / "shared"
MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)
BATCH = 32
SIZE = 224


def preprocess(data: bytes) -> np.ndarray:
    """Encoded image -> 3x224x224 float32, BGR minus the ImageNet mean (SqueezeNet's input).

    JPEGs decode at a reduced scale (libjpeg 1/2, 1/4 or 1/8) that stays at least 224 px, as
    deepframes' decode_image does, then convert to RGB and resize bilinear to 224x224."""
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.draft("RGB", (SIZE, SIZE))
    image = image.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
    return (np.asarray(image, dtype=np.float32)[:, :, ::-1] - MEAN_BGR).transpose(2, 0, 1)


def pixels_to_input(pixels: np.ndarray) -> np.ndarray:
    """224x224x3 uint8 RGB pixels (an engine's own decoder) -> the same model input."""
    return (np.asarray(pixels, dtype=np.float32)[:, :, ::-1] - MEAN_BGR).transpose(2, 0, 1)


def ort_session(model: str, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--images", default=str(SHARED / "data" / "pets" / "images"))
    parser.add_argument("--model", default=str(SHARED / "models" / "squeezenet1.1.onnx"))
    parser.add_argument("--repeats", type=int, default=3)
    return parser


def image_files(folder: str) -> list[str]:
    return sorted(str(path) for path in Path(folder).glob("*.jpg"))


def peak_mb() -> float:
    """Largest peak RSS (VmHWM) among this process and its Python descendants alive now (the
    engine's workers), in MB. Native helpers (Ray's raylet, GCS) are left out."""
    parents: dict[int, int] = {}
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
            parents[int(status.parent.name)] = int(fields[1])
        except (OSError, ValueError, IndexError):
            continue
    me = os.getpid()

    def descends(pid: int) -> bool:
        seen = set()
        while pid and pid not in seen:
            if pid == me:
                return True
            seen.add(pid)
            pid = parents.get(pid, 0)
        return False

    peak_kb = 0
    for pid in parents:
        if not descends(pid):
            continue
        try:
            if not os.path.basename(os.readlink(f"/proc/{pid}/exe")).startswith("python"):
                continue
            text = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("VmHWM:"):
                peak_kb = max(peak_kb, int(line.split()[1]))
    return peak_kb / 1024


def measure(run: Callable[[], int], repeats: int) -> tuple[float, int]:
    """Warm up once, then the median seconds of ``repeats`` runs; and the rows a run produced."""
    rows = run()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        count = run()
        seconds.append(time.perf_counter() - started)
        if count != rows:
            raise RuntimeError(f"a run produced {count} rows, the warm-up {rows}")
    return statistics.median(seconds), rows


def report(engine: str, version: str, seconds: float, rows: int, repeats: int, config: str) -> None:
    print(json.dumps({"engine": engine, "version": version, "seconds": seconds, "rows": rows,
                      "repeats": repeats, "peak_mb": peak_mb(), "config": config}), flush=True)
