"""The JSON API: real photos, bad uploads as readable 4xx, concurrent requests on one loaded model."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from deepframes.apps.predict import BreedPredictor
from deepframes.serve import LocalPipeline, create_app
from tests.conftest import LOCAL_MASTER

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pipeline(pets_model, spark_sessions):
    return LocalPipeline(pets_model, spark_sessions.get(LOCAL_MASTER))


@pytest.fixture(scope="module")
def client(pipeline, pets_model):
    return TestClient(create_app(pipeline, str(pets_model), max_bytes=2 * 1024 * 1024))


def _upload(client, name: str, content: bytes, content_type: str = "image/jpeg"):
    return client.post("/api/predict", files={"file": (name, content, content_type)})


def test_api_predicts_top_3_breeds_of_a_real_photo(client, pets_images):
    response = _upload(client, "Bengal_10.jpg", (pets_images / "Bengal_10.jpg").read_bytes())
    assert response.status_code == 200
    answer = response.json()
    assert answer["predictions"][0]["label"] == "Bengal"
    assert len(answer["predictions"]) == 3 and answer["seconds"] > 0


def test_in_process_answers_equal_the_spark_pipeline(pipeline, pets_model, pets_images, spark):
    paths = [str(pets_images / name) for name in ("Abyssinian_34.jpg", "Abyssinian_5.jpg", "american_bulldog_10.jpg")]
    spark_answers = BreedPredictor(pets_model, spark).predict_paths(paths, top=3)
    assert pipeline.mode == "in-process" and len(spark_answers) == 3
    for expected in spark_answers:
        local = pipeline.predict(Path(expected.path.removeprefix("file:")).read_bytes(), top=3)
        assert [label for label, _ in local.top] == [label for label, _ in expected.top]
        assert max(abs(a - b) for (_, a), (_, b) in zip(local.top, expected.top)) < 1e-3
        # the training photos most like it: the same, at the same distances
        assert [photo.path for photo in local.similar] == [photo.path for photo in expected.similar]
        assert max(abs(a.distance - b.distance) for a, b in zip(local.similar, expected.similar)) < 1e-4


def test_api_answers_with_the_3_training_photos_most_like_the_photo(client, pets_images, pets_model, spark):
    from deepframes.similarity import register_index

    photo = pets_images / "Abyssinian_34.jpg"
    similar = _upload(client, photo.name, photo.read_bytes()).json()["similar"]
    assert len(similar) == 3 and client.get("/api/health").json()["similar_photos"] == 480
    assert all(item["thumbnail"].startswith("data:image/jpeg;base64,") for item in similar)
    assert [item["distance"] for item in similar] == sorted(item["distance"] for item in similar)
    # The same three as SQL's nearest() over the saved index, on features Spark computed.
    from deepframes.apps.train import load_model

    featurizer = load_model(pets_model).stages[0]
    register_index(spark, str(pets_model / "similar" / "index"), name="like_training")
    featurized = featurizer.transform(spark.read.format("binaryFile").load(str(photo)).select("path", "content")
                                      .withColumnRenamed("content", featurizer.getInputCol()))
    featurized.createOrReplaceTempView("uploaded")
    (row,) = spark.sql(f"SELECT like_training({featurizer.getOutputCol()}, 3) AS near FROM uploaded").collect()
    assert [item["path"] for item in similar] == [found.id for found in row.near]
    assert max(abs(item["distance"] - found.distance) for item, found in zip(similar, row.near)) < 1e-4


@pytest.mark.parametrize("name, content, status, code", [
    ("empty.jpg", b"", 400, "empty"),
    ("notes.jpg", b"hello, I am text\n", 415, "not_an_image"),
    ("huge.png", b"\x89PNG" + b"0" * (2 * 1024 * 1024 + 10), 413, "too_large"),
    # refused on its declared length, before the body is read
    ("huger.png", b"\x89PNG" + b"0" * (3 * 1024 * 1024), 413, "too_large"),
])
def test_api_bad_uploads_get_a_readable_4xx(client, name, content, status, code):
    response = _upload(client, name, content)
    assert response.status_code == status
    body = response.json()
    assert body["code"] == code and body["detail"].endswith(".") and body["reason"]


def test_api_missing_file_field_is_a_readable_422(client):
    response = client.post("/api/predict")
    assert response.status_code == 422 and isinstance(response.json()["detail"], str)


def test_api_serves_concurrent_requests_in_batches_without_reloading(client, pipeline, pets_images, monkeypatch):
    from deepframes.models import spec as spec_module

    loads = []
    original_load = spec_module.load_engine
    monkeypatch.setattr(spec_module, "load_engine", lambda *a, **k: loads.append(a) or original_load(*a, **k))
    engine = pipeline.function.plan.model.load()
    runs = []
    monkeypatch.setattr(engine, "run", lambda feeds, outputs=None, _run=engine.run: runs.append(1) or _run(feeds, outputs))
    photos = [(pets_images / f"{breed}_{n}.jpg").read_bytes() for breed in ("Bengal", "Abyssinian") for n in range(1, 5)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda photo: _upload(client, "p.jpg", photo), photos))
    assert all(response.status_code == 200 for response in responses)
    num_runs = len(runs)
    alone = [pipeline.predict(photo, top=1).top[0][0] for photo in photos]
    assert [response.json()["predictions"][0]["label"] for response in responses] == alone
    assert 1 <= num_runs <= len(photos) and loads == []  # batches through the one loaded network


def test_api_health_page_and_docs(client):
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["labels"] == ["Abyssinian", "Bengal", "american_bulldog"]
    page = client.get("/").text
    assert 'accept="image/*"' in page and 'capture="environment"' in page
    assert "/api/predict" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200


def test_api_accepts_a_png_with_alpha(client):
    buffer = io.BytesIO()
    Image.new("RGBA", (64, 48), (200, 120, 40, 128)).save(buffer, format="PNG")
    assert _upload(client, "x.png", buffer.getvalue(), "image/png").status_code == 200


def test_api_answers_not_recognised_with_a_hint_for_a_photo_that_is_no_pet(client, pets_images):
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1), (255, 0, 0)).save(buffer, format="PNG")  # a red pixel was "Abyssinian 90.5%"
    answer = _upload(client, "red.png", buffer.getvalue(), "image/png").json()
    assert answer["recognised"] is False and answer["predictions"] == []
    assert sorted(answer["hint"]) == ["Abyssinian", "Bengal", "american_bulldog"]
    pet = _upload(client, "Bengal_10.jpg", (pets_images / "Bengal_10.jpg").read_bytes()).json()
    assert pet["recognised"] is True and pet["hint"] == [] and pet["predictions"][0]["label"] == "Bengal"
    page = client.get("/").text
    assert "Not recognised" in page and "Hint only, not an answer" in page
