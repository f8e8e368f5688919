"""The page, end to end: the real server, Debian's Chromium driven by Playwright, a real photo."""

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

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking switches Chromium's own connections are refused on a closed
# network, and the page load waits on them.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DEEPFRAMES = Path(sys.executable).with_name("deepframes")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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


@pytest.fixture(scope="module")
def server(pets_model):
    port = _free_port()
    process = subprocess.Popen(
        [str(DEEPFRAMES), "serve", str(pets_model), "--port", str(port), "--master", "local[1]"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_for_health(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-chromium.sh (apt-get install chromium) as root.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, args=CHROMIUM_ARGS,
            headless=True,
        )
        yield context
        context.close()


def test_page_uploads_a_photo_and_shows_the_top_3_breeds(server, browser, pets_images):
    page = browser.new_page()
    page.goto(server)
    page.set_input_files("#file", str(pets_images / "american_bulldog_10.jpg"))
    page.wait_for_selector("#results li:nth-child(3)", timeout=30_000)
    labels = page.locator("#results li .label").all_inner_texts()
    percents = page.locator("#results li .probability").all_inner_texts()
    assert labels[0] == "american_bulldog" and len(labels) == 3
    assert all(text.endswith("%") for text in percents)
    assert page.locator("#preview").is_visible()


def test_page_shows_a_readable_error_for_a_file_that_is_not_an_image(server, browser, tmp_path):
    text_file = tmp_path / "notes.jpg"
    text_file.write_text("not a photo\n")
    page = browser.new_page()
    page.goto(server)
    page.set_input_files("#file", str(text_file))
    page.wait_for_function("document.getElementById('error').textContent.length > 0", timeout=30_000)
    assert "is not a readable image" in page.locator("#error").inner_text()
    assert page.locator("#results li").count() == 0
