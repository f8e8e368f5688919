"""The service's answers other than breeds, on a stand-in model (no Spark): one plain sentence in
``detail`` with the technical ``reason`` beside it, the token, the pixel limit, health, offline docs."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from deepframes.images.decode import ImageDecodeError, decode_image
from deepframes.inference.pipeline import Answer
from deepframes.serve import create_app
from tests.conftest import encode

TOKEN = "s3cret-token"


class StandIn:
    """Decodes like the real pipeline; always answers cat then dog."""

    labels, mode, workers = ["cat", "dog"], "in-process", 1

    def answers(self, photos, top):
        answers = []
        for photo in photos:
            try:
                decode_image(photo, (8, 8))
                answers.append(Answer([("cat", 0.75), ("dog", 0.25)][:top]))
            except ImageDecodeError as error:
                answers.append(Answer([], str(error)))
        return answers


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(StandIn(), "/srv/models/pets-model", max_bytes=1024 * 1024,
                               max_pixels=1_000_000)) as client:
        yield client


@pytest.fixture(scope="module")
def guarded():
    with TestClient(create_app(StandIn(), "/srv/models/pets-model", token=TOKEN)) as client:
        yield client


def _upload(client, name: str, content: bytes, headers=None):
    return client.post("/api/predict", files={"file": (name, content, "image/jpeg")}, headers=headers or {})


def _is_one_plain_sentence(text: str) -> bool:
    """One sentence, no Python or Pillow vocabulary: what a person holding a phone can act on."""
    jargon = ("b'", "Pillow", "bytes", "Error", "body.", "DOS", "decompression", "0x", "()", "[")
    return text.endswith(".") and text.count(". ") == 0 and not any(word in text for word in jargon)


JPEG = encode(Image.new("RGB", (64, 48), "orange"), "JPEG")


@pytest.mark.parametrize("name, content, status, code, detail, reason", [
    ("empty.jpg", b"", 400, "empty", "arrived empty", "is empty (0 bytes)"),
    ("notes.jpg", b"hello, there, I am text\n", 415, "not_an_image", "is not a photo", "first bytes b'hello, t'"),
    ("cut.jpg", JPEG[: len(JPEG) // 2], 415, "damaged", "damaged or was only partly sent", "corrupt image header"),
    ("end-cut.jpg", JPEG[: len(JPEG) * 9 // 10], 415, "damaged", "damaged or was only partly sent",
     "truncated or corrupt JPEG data"),
    ("huge.png", b"\x89PNG" + b"0" * (1024 * 1024 + 10), 413, "too_large", "too large to send (over 1 MB)",
     "larger than the limit of 1048576 bytes"),
    ("huger.png", b"\x89PNG" + b"0" * (3 * 1024 * 1024), 413, "too_large", "too large to send", "--max-mb"),
    ("wide.png", encode(Image.new("RGBA", (1200, 1000)), "PNG"), 413, "too_many_pixels",
     "too many pixels to check (1 megapixels)", "1200x1000 = 1.2 million pixels, over the limit of 1 million"),
])
def test_errors_are_one_plain_sentence_with_the_reason_beside_it(client, name, content, status, code, detail, reason):
    response = _upload(client, name, content)
    body = response.json()
    assert response.status_code == status and body["code"] == code
    assert detail in body["detail"] and reason in body["reason"]
    assert _is_one_plain_sentence(body["detail"]), body["detail"]


def test_errors_422_is_a_readable_string(client):
    response = client.post("/api/predict")
    body = response.json()
    assert response.status_code == 422 and body["code"] == "no_photo"
    assert body["detail"] == "No photo was attached: choose or take a photo and send it."
    assert "body.file: Field required" in body["reason"]
    wrong_field = client.post("/api/predict", files={"photo": ("x.jpg", JPEG, "image/jpeg")}).json()
    assert isinstance(wrong_field["detail"], str) and wrong_field["code"] == "no_photo"


def test_errors_unknown_address_is_readable(client):
    body = client.get("/api/nothing-here").json()
    assert _is_one_plain_sentence(body["detail"]) and "404" in body["reason"]


def test_errors_photo_within_the_limits_is_answered(client):
    response = _upload(client, "ok.jpg", JPEG)
    assert response.status_code == 200
    assert [item["label"] for item in response.json()["predictions"]] == ["cat", "dog"]


def test_token_is_required_on_the_api_when_set(guarded):
    missing = _upload(guarded, "ok.jpg", JPEG)
    wrong = _upload(guarded, "ok.jpg", JPEG, {"Authorization": "Bearer not-it"})
    right = _upload(guarded, "ok.jpg", JPEG, {"Authorization": f"Bearer {TOKEN}"})
    assert missing.status_code == wrong.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["code"] == "token" and "access code" in missing.json()["detail"]
    assert "does not match" in wrong.json()["reason"]
    assert right.status_code == 200
    # The page and the health check need no token; the page asks for it when health says so.
    assert guarded.get("/").status_code == 200
    assert guarded.get("/api/health").json()["token_required"] is True


def test_health_shows_no_file_system_path(client):
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["model"] == "pets-model" and health["token_required"] is False
    assert health["max_pixels"] == 1_000_000 and health["max_bytes"] == 1024 * 1024
    assert "/" not in repr(health)


def test_docs_are_served_without_internet(client):
    page = client.get("/docs").text
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)
    scripts = [asset for asset in assets if asset.endswith((".js", ".css"))]
    assert scripts and all(asset.startswith("/") for asset in scripts), scripts  # no CDN
    for asset in scripts:
        assert client.get(asset).status_code == 200, asset
    schema = client.get("/openapi.json").json()
    assert "/api/predict" in schema["paths"] and "HTTPBearer" in schema["components"]["securitySchemes"]
