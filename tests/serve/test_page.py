"""The page, end to end: the real server, Debian's Chromium driven by Playwright, real photos."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from tests.serve.conftest import start_server

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking switches Chromium's own connections are refused on a closed
# network, and the page load waits on them.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True, "has_touch": True}
TOKEN = "field-team-token"
# Playwright does not show multipart bodies holding a File: the page's fetch records what it sends.
RECORD_SENT_PHOTOS = """
window.sentPhotos = [];
const originalFetch = window.fetch;
window.fetch = async (url, options) => {
  const file = options && options.body instanceof FormData ? options.body.get("file") : null;
  if (file) {
    const bitmap = await createImageBitmap(file);
    window.sentPhotos.push({ type: file.type, size: file.size, width: bitmap.width, height: bitmap.height });
  }
  return originalFetch(url, options);
};
"""


@pytest.fixture(scope="module")
def server(pets_model):
    served = start_server(pets_model, token=TOKEN)
    yield served
    served.stop()


@pytest.fixture(scope="module")
def playwright():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-chromium.sh (apt-get install chromium) as root.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


def _launch(playwright, profile, **options):
    return playwright.chromium.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, **options)


@pytest.fixture(scope="module")
def browser(playwright, tmp_path_factory):
    context = _launch(playwright, tmp_path_factory.mktemp("chromium-profile"))
    yield context
    context.close()


def _results_after(page, action, timeout=60_000) -> list[str]:
    """Do ``action`` and wait for the page's answer: the breeds shown, or [] for a message."""
    page.evaluate("document.getElementById('results').innerHTML = document.getElementById('error').textContent = '';"
                  "document.getElementById('unrecognised').hidden = true")
    action()
    page.wait_for_function(
        "document.querySelectorAll('#results li').length > 0 || document.getElementById('error').textContent"
        " || !document.getElementById('unrecognised').hidden", timeout=timeout)
    return page.locator("#results li .label").all_inner_texts()


def test_page_uploads_a_photo_and_shows_the_top_3_breeds(server, browser, pets_images):
    page = browser.new_page()
    page.goto(server.url + "?token=" + TOKEN)
    assert "token" not in page.url  # remembered on the phone, out of the address bar
    labels = _results_after(page, lambda: page.set_input_files("#file", str(pets_images / "american_bulldog_10.jpg")))
    percents = page.locator("#results li .probability").all_inner_texts()
    assert labels[0] == "american_bulldog" and len(labels) == 3
    assert all(text.endswith("%") for text in percents)
    assert page.locator("#preview").is_visible()


def test_page_shows_the_3_training_photos_most_like_the_photo(server, browser, pets_images, tmp_path):
    page = browser.new_page()
    page.set_viewport_size({"width": 600, "height": 1100})
    page.goto(server.url + "?token=" + TOKEN)
    _results_after(page, lambda: page.set_input_files("#file", str(pets_images / "Bengal_10.jpg")))
    gallery = page.locator("#similar")
    gallery.wait_for(state="visible")
    assert page.locator("#similar figure").count() == 3
    assert all(width > 0 for width in page.eval_on_selector_all("#similar img", "images => images.map(i => i.naturalWidth)"))
    captions = page.locator("#similar figcaption").all_inner_texts()
    assert all("distance" in caption for caption in captions) and "Bengal" in captions[0]
    shot = tmp_path / "similar.png"
    gallery.screenshot(path=str(shot))
    with Image.open(shot) as image:  # three photos, not an empty box
        assert image.width >= 3 * 104 and np.asarray(image.convert("L")).std() > 20


def test_page_shows_a_plain_sentence_for_a_file_that_is_not_an_image(server, browser, tmp_path):
    text_file = tmp_path / "notes.jpg"
    text_file.write_text("not a photo\n")
    page = browser.new_page()
    page.goto(server.url)  # the token is remembered from the first visit
    assert _results_after(page, lambda: page.set_input_files("#file", str(text_file))) == []
    assert page.locator("#error").inner_text() == "This file is not a photo: choose a photo (JPEG or PNG) and send it."


def test_page_shrinks_a_large_photo_before_sending_it(server, browser, tmp_path):
    large = tmp_path / "large.jpg"  # 4000 x 3000 of noise: about 14 MB, over the 10 MB limit and 1600 px
    noise = np.random.default_rng(0).integers(0, 256, (3000, 4000, 3), dtype=np.uint8)
    Image.fromarray(noise).save(large, quality=95)
    assert large.stat().st_size > 10 * 1024 * 1024
    page = browser.new_page()
    page.add_init_script(RECORD_SENT_PHOTOS)
    page.goto(server.url)
    _results_after(page, lambda: page.set_input_files("#file", str(large)))  # noise: "not recognised"
    assert page.locator("#error").inner_text() == ""  # answered, not refused as too large
    (sent,) = page.evaluate("window.sentPhotos")
    assert sent["type"] == "image/jpeg" and sent["size"] < 4 * 1024 * 1024  # noise: the hardest to compress
    assert (sent["width"], sent["height"]) == (1600, 1200)


def test_page_on_a_phone_same_photo_twice_not_recognised_and_service_down(pets_model, playwright, pets_images,
                                                                         tmp_path):
    served = start_server(pets_model, token=TOKEN)
    phone = _launch(playwright, tmp_path / "phone-profile", **PHONE)
    try:
        page = phone.new_page()
        page.goto(served.url)
        assert page.viewport_size == {"width": 390, "height": 844}
        photo = str(pets_images / "Bengal_10.jpg")
        # No token yet: the page asks for the access code, then sends the photo again by itself.
        assert _results_after(page, lambda: page.set_input_files("#file", photo)) == []
        assert "access code" in page.locator("#error").inner_text()
        page.fill("#token", TOKEN)
        assert _results_after(page, lambda: page.click("#token-form button"))[0] == "Bengal"
        # The same photo again is answered again.
        assert _results_after(page, lambda: page.set_input_files("#file", photo))[0] == "Bengal"
        # A photo of no pet (noise, as tests/apps/test_not_recognised.py uses): "Not recognised".
        noise = tmp_path / "noise.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)).save(noise)
        assert _results_after(page, lambda: page.set_input_files("#file", str(noise))) == []
        assert page.locator("#unrecognised").is_visible()
        assert "Not recognised" in page.locator("#unrecognised").inner_text()
        # The service stops: the page says so in plain words.
        served.stop()
        assert _results_after(page, lambda: page.set_input_files("#file", photo)) == []
        assert page.locator("#error").inner_text() == "The service cannot be reached, try again in a moment."
    finally:
        phone.close()
        served.stop()

