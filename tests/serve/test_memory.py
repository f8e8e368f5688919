"""Bounded memory: 8 worst-case uploads at once keep the real server under 1.5 GB resident."""

from __future__ import annotations

import io
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from tests.serve.conftest import start_server

pytestmark = pytest.mark.slow

LIMIT_GB = 1.5


def _png(width: int, height: int) -> bytes:
    """A solid RGBA PNG: a few hundred KB that decode to 4 bytes per pixel (the 363 KB bomb of
    9400 x 9400 decodes to 353 MB)."""
    buffer = io.BytesIO()
    Image.new("RGBA", (width, height), (90, 140, 200, 255)).save(buffer, format="PNG", compress_level=9)
    return buffer.getvalue()


def _post(url: str, content: bytes) -> int:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"worst.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url + "api/predict", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _peak_gb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024 / 1024
    raise AssertionError("no VmHWM in /proc")


def test_memory_stays_bounded_under_8_worst_case_uploads_at_once(pets_model):
    server = start_server(pets_model)  # the default --max-pixels, 50 million
    try:
        refused, largest = _png(9400, 9400), _png(7071, 7071)  # 88.4 and 49.99 million pixels
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda content: _post(server.url, content), [refused] * 8))
            statuses += list(pool.map(lambda content: _post(server.url, content), [largest] * 8))
        assert statuses == [413] * 8 + [200] * 8
        peak = _peak_gb(server.process.pid)
        assert peak < LIMIT_GB, f"peak resident memory {peak:.2f} GB"
    finally:
        server.stop()
