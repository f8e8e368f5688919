"""Benchmark: the breed web service (`deepframes serve`) under concurrent clients, and its memory.

Starts `deepframes serve MODEL` in a subprocess, then for 1, 8 and 32 concurrent clients (each a
thread with its own keep-alive connection) posts real pet photos to `/api/predict` for a fixed
time and reports requests/second and p50/p95 latency. The server's peak resident memory (VmHWM)
is read from /proc after each phase (reset between phases through /proc/PID/clear_refs), with the
server's CPU time per request (which a busy machine changes much less than latency), and a
last phase sends 8 worst-case uploads at once: the 363 KB RGBA PNG of 9400x9400 pixels (refused by
its header), then RGBA PNGs just under the server's pixel limit (decoded). Judged: p95 latency at
8 clients against the 250 ms target.

Without --model, a small model is trained first on 30 of the shared pets (the work per request is
the same as for a model trained on all 600) into a temporary folder, removed at the end.

    .venv/bin/python bench/serve.py [--model DIR] [--seconds 10] [--clients 1,8,32] [--json out.json]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared"
PETS = SHARED / "data" / "pets" / "images"
SQUEEZENET = SHARED / "models" / "squeezenet1.1.onnx"
TARGET_P95_MS = 250.0
WORST_CASE_CLIENTS = 8


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _train_model(folder: Path, master: str) -> None:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "deepframes.cli", "train", str(PETS / "*_1?.jpg"), "--weights",
                           str(SQUEEZENET), "--out", str(folder), "--master", master], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"training the benchmark's model failed:\n{done.stderr[-3000:]}")
    print(f"(trained a model on 30 pets in {time.perf_counter() - started:.0f} s: {folder})", flush=True)


def _multipart(name: str, content: bytes, content_type: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: {content_type}\r\n\r\n").encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class Client:
    """One keep-alive connection posting photos; records each request's latency and status."""

    def __init__(self, port: int, token: str | None) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def post(self, body: bytes, content_type: str) -> tuple[float, int]:
        started = time.perf_counter()
        self.connection.request("POST", "/api/predict", body=body,
                                headers={**self.headers, "Content-Type": content_type})
        response = self.connection.getresponse()
        response.read()
        return time.perf_counter() - started, response.status


def _run_clients(port: int, token: str | None, bodies: list[tuple[bytes, str]], clients: int,
                 seconds: float | None = None, requests_each: int | None = None) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    start_together = threading.Barrier(clients)
    deadline: list[float] = []

    def work(index: int) -> None:
        client = Client(port, token)
        start_together.wait()
        if not deadline:
            deadline.append(time.perf_counter() + (seconds or 0))
        done = 0
        while (requests_each is not None and done < requests_each) or \
                (requests_each is None and time.perf_counter() < deadline[0]):
            body, content_type = bodies[(index * 7 + done) % len(bodies)]
            latency, status = client.post(body, content_type)
            with lock:
                latencies.append(latency)
                statuses[status] = statuses.get(status, 0) + 1
            done += 1
        client.connection.close()

    threads = [threading.Thread(target=work, args=(index,)) for index in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "clients": clients, "requests": len(latencies), "seconds": round(elapsed, 2),
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(1000 * statistics.median(ordered), 1),
        "p95_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
        "statuses": statuses,
    }


class ServerMemory:
    """The server process's resident memory: now (VmRSS) and peak since the last reset (VmHWM)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def _status(self, key: str) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024 / 1024  # kB -> GB
        return float("nan")

    def now_gb(self) -> float:
        return self._status("VmRSS")

    def peak_gb(self) -> float:
        return self._status("VmHWM")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (robust to a busy machine)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def reset_peak(self) -> bool:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # 5: reset the peak RSS (Linux 4.0+)
            return True
        except OSError:
            return False


def _png(width: int, height: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGBA", (width, height), (90, 140, 200, 255)).save(buffer, format="PNG", compress_level=9)
    return buffer.getvalue()


def _wait_for_health(port: int, server: subprocess.Popen, token: str | None, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"deepframes serve exited with {server.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/api/health")
            response = connection.getresponse()
            if response.status == 200:
                return json.loads(response.read())
        except OSError:
            time.sleep(0.2)  # polling: the server signals readiness by answering
    raise SystemExit(f"deepframes serve did not answer within {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a model folder written by 'deepframes train' (default: train a small one)")
    parser.add_argument("--seconds", type=float, default=10, help="seconds per concurrency level (default: 10)")
    parser.add_argument("--clients", default="1,8,32", help="concurrency levels (default: 1,8,32)")
    parser.add_argument("--master", default="local[2]", help="Spark master for loading/training (default: local[2])")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="deepframes-bench-serve-"))
    token = "bench-" + uuid.uuid4().hex
    server = None
    try:
        model = Path(args.model) if args.model else scratch / "model"
        if not args.model:
            _train_model(model, args.master)
        port = _free_port()
        environment = {**os.environ, "DEEPFRAMES_TOKEN": token}
        server = subprocess.Popen([sys.executable, "-m", "deepframes.cli", "serve", str(model), "--port", str(port),
                                   "--master", args.master], env=environment, stdout=subprocess.DEVNULL)
        health = _wait_for_health(port, server, token)
        memory = ServerMemory(server.pid)
        photos = sorted(PETS.glob("*.jpg"))
        bodies = [_multipart(path.name, path.read_bytes(), "image/jpeg") for path in photos[::5]]
        _run_clients(port, token, bodies, 2, requests_each=10)  # warm-up
        idle_gb = memory.now_gb()
        print(f"server up: {health.get('labels')} {health.get('mode')}, {idle_gb:.2f} GB resident after warm-up; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)

        rows = []
        for clients in (int(part) for part in args.clients.split(",")):
            memory.reset_peak()
            cpu_before = memory.cpu_seconds()
            row = _run_clients(port, token, bodies, clients, seconds=args.seconds)
            row["peak_gb"] = round(memory.peak_gb(), 2)
            row["server_cpu_ms_per_request"] = round(1000 * (memory.cpu_seconds() - cpu_before) / row["requests"], 1)
            rows.append(row)
            print(f"  {clients:>2} clients: {row['requests_per_second']} req/s, p95 {row['p95_ms']} ms", flush=True)

        worst = []
        max_pixels = int(health.get("max_pixels") or 0)
        cases = [("9400x9400 RGBA PNG (over the limit)", 9400, 9400)]
        if max_pixels:
            side = int(max_pixels ** 0.5)
            cases.append((f"{side}x{side} RGBA PNG (just under the limit)", side, side))
        for label, width, height in cases:
            content = _png(width, height)
            upload = [_multipart("worst.png", content, "image/png")]
            memory.reset_peak()
            row = _run_clients(port, token, upload, WORST_CASE_CLIENTS, requests_each=1)
            worst.append({"upload": label, "bytes": len(content), "clients": WORST_CASE_CLIENTS,
                          "statuses": row["statuses"], "p95_ms": row["p95_ms"], "peak_gb": round(memory.peak_gb(), 2)})
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
        shutil.rmtree(scratch, ignore_errors=True)

    print()
    print("| clients | requests | req/s | p50 ms | p95 ms | server CPU ms/request | peak server GB | answers |")
    print("|---------|----------|-------|--------|--------|-----------------------|----------------|---------|")
    for row in rows:
        answers = ", ".join(f"{count} x {status}" for status, count in sorted(row["statuses"].items()))
        print(f"| {row['clients']:>7} | {row['requests']:>8} | {row['requests_per_second']:>5} | {row['p50_ms']:>6} | "
              f"{row['p95_ms']:>6} | {row['server_cpu_ms_per_request']:>21} | {row['peak_gb']:>14} | {answers} |")
    print()
    print(f"| {WORST_CASE_CLIENTS} uploads at once{' ' * 34} | bytes each | answers  | peak server GB |")
    print(f"|{'-' * 52}|------------|----------|----------------|")
    for row in worst:
        answers = ", ".join(f"{count} x {status}" for status, count in sorted(row["statuses"].items()))
        print(f"| {row['upload']:<50} | {row['bytes']:>10} | {answers:<8} | {row['peak_gb']:>14} |")
    print()
    print(f"server resident after warm-up: {idle_gb:.2f} GB (the Spark JVM that loaded the model is a separate process)")
    at_8 = next((row for row in rows if row["clients"] == 8), None)
    if at_8 is not None:
        ratio = at_8["p95_ms"] / TARGET_P95_MS
        verdict = "met" if ratio < 1 else "not met"
        print(f"p95 at 8 clients: {at_8['p95_ms']} ms = {ratio:.2f} x the {TARGET_P95_MS:.0f} ms target ({verdict})")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if args.json:
        Path(args.json).write_text(json.dumps({"idle_gb": idle_gb, "levels": rows, "worst_case": worst,
                                               "load_average": os.getloadavg()[0]}, indent=2))


if __name__ == "__main__":
    main()
