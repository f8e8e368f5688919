"""Fixtures of the web service tests: the same pets features and model as tests/apps, built once,
and `deepframes serve` started as a real server process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.apps.conftest import pets_features, pets_model

__all__ = ["pets_features", "pets_model", "Server", "start_server"]

DEEPFRAMES = Path(sys.executable).with_name("deepframes")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A `deepframes serve` process: its URL, and stopping it."""

    def __init__(self, process: subprocess.Popen, url: str) -> None:
        self.process, self.url = process, url

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)


def _wait_for_health(url: str, server: subprocess.Popen, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"deepframes serve exited with {server.returncode}: {server.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "api/health", timeout=2) as response:
                return json.load(response)
        except OSError:
            time.sleep(0.2)  # polling the health endpoint; the server signals readiness by answering
    pytest.fail(f"deepframes serve did not answer {url}api/health within {timeout} s")


def start_server(model: Path, *options: str, token: str | None = None) -> Server:
    """Start `deepframes serve MODEL` on a free port and wait until it answers."""
    port = free_port()
    environment = {**os.environ, "DEEPFRAMES_TOKEN": token or ""}
    process = subprocess.Popen(
        [str(DEEPFRAMES), "serve", str(model), "--port", str(port), "--master", "local[1]", *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_for_health(url, process)
    except BaseException:
        Server(process, url).stop()
        raise
    return Server(process, url)
