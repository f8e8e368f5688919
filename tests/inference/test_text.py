"""TextEmbedder: the embeddings of an in-process computation whatever the batching, nulls, a
self-contained save, one-line errors for a bad model, and text-to-photo search (CLIP-style) with
towers made here. (The shared stage conformance test runs it too: test_stages.py.)"""

from __future__ import annotations

import shutil
import sys
import types
import warnings

import numpy as np
import pytest
from PIL import Image
from pyspark.ml.linalg import DenseVector
from pyspark.sql import functions as F

import deepframes
from deepframes.models.text import find_text_encoder
from tests.inference.text_models import MAX_LENGTH, reference_embeddings

TEXTS = [
    "a red photo of a square",
    "a dog",
    "two dogs run in the park at night and the cat sleeps on the warm mat in the snow",  # cut to 16 tokens
    "words the tokenizer never saw",
    "",
    "snow",
]


def _embed(spark, folder, texts, **params):
    rows = [(index, text) for index, text in enumerate(texts)]
    df = spark.createDataFrame(rows, "id long, text string").repartition(1)
    stage = deepframes.TextEmbedder(model=str(folder), maxLength=MAX_LENGTH, **params)
    return stage.transform(df).orderBy("id").collect()


@pytest.mark.parametrize("kind", ["onnx", "torchscript"])
def test_text_embedder_matches_in_process_embeddings(spark, text_encoders, kind):
    expected = reference_embeddings(text_encoders[kind], TEXTS)
    for batch_size in (1, 4):  # alone, and padded beside longer and shorter texts
        rows = _embed(spark, text_encoders[kind], TEXTS, batchSize=batch_size)
        assert all(isinstance(row.embedding, DenseVector) for row in rows)
        received = np.stack([row.embedding.toArray() for row in rows])
        np.testing.assert_allclose(received, expected, atol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(received, axis=1), 1.0, atol=1e-5)
        assert all(row.error is None for row in rows)


def test_text_embedder_as_a_sql_function_gives_the_stage_embeddings(spark, text_encoders):
    deepframes.register_udf(spark, "embed_text", deepframes.TextEmbedder(model=str(text_encoders["onnx"]),
                                                                         maxLength=MAX_LENGTH))
    spark.createDataFrame([(text,) for text in TEXTS[:3]] + [(None,)], "text string").createOrReplaceTempView("texts")
    rows = spark.sql("SELECT text, embed_text(text) AS embedding FROM texts").collect()
    embedded = {row.text: row.embedding for row in rows}
    assert embedded[None] is None
    np.testing.assert_allclose(np.array([embedded[text] for text in TEXTS[:3]]),
                               reference_embeddings(text_encoders["onnx"], TEXTS[:3]), atol=1e-5)


def test_text_embedder_null_text_gives_null_embedding(spark, text_encoders):
    rows = _embed(spark, text_encoders["onnx"], [None, "a dog", None], batchSize=2)
    assert [row.embedding is None for row in rows] == [True, False, True]
    assert [row.error for row in rows] == [None, None, None]
    np.testing.assert_allclose(rows[1].embedding.toArray(), reference_embeddings(text_encoders["onnx"], ["a dog"])[0],
                               atol=1e-5)


def test_text_embedder_without_normalising_gives_the_mean_of_the_states(spark, text_encoders):
    (row,) = _embed(spark, text_encoders["onnx"], ["a red photo"], normalize=False)
    assert abs(np.linalg.norm(row.embedding.toArray()) - 1.0) > 1e-3
    np.testing.assert_allclose(row.embedding.toArray() / np.linalg.norm(row.embedding.toArray()),
                               reference_embeddings(text_encoders["onnx"], ["a red photo"])[0], atol=1e-5)


def test_text_embedder_saves_its_two_files_and_needs_nothing_else(spark, text_encoders, tmp_path):
    folder = tmp_path / "my-encoder"
    shutil.copytree(text_encoders["onnx"], folder)
    (folder / "pytorch_model.bin").write_bytes(b"other weights of the repository")
    stage = deepframes.TextEmbedder(model=str(folder), maxLength=MAX_LENGTH, batchSize=3, normalize=True)
    stage.write().overwrite().save(str(tmp_path / "stage"))
    shutil.rmtree(folder)
    loaded = deepframes.TextEmbedder.load(str(tmp_path / "stage"))
    assert sorted(path.name for path in (tmp_path / "stage" / "files" / "model" / "my-encoder").iterdir()) == \
        ["model.onnx", "tokenizer.json"]
    assert loaded.uid == stage.uid
    assert (loaded.getMaxLength(), loaded.getBatchSize(), loaded.getNormalize(), loaded.getErrors()) == (MAX_LENGTH, 3, True, "column")
    texts = spark.createDataFrame([("a dog",), ("snow",)], "text string")
    received = np.stack([row.embedding.toArray() for row in loaded.transform(texts).collect()])
    np.testing.assert_allclose(received, reference_embeddings(text_encoders["onnx"], ["a dog", "snow"]), atol=1e-5)


def test_text_embedder_bad_folder_says_what_is_missing_in_one_line(text_encoders, tmp_path):
    shutil.copy(text_encoders["onnx"] / "model.onnx", tmp_path / "model.onnx")
    with pytest.raises(ValueError, match=r"has no tokenizer\.json; it holds \['model\.onnx'\]") as raised:
        deepframes.TextEmbedder(model=str(tmp_path)).inference_plan()
    assert "\n" not in str(raised.value)
    (tmp_path / "model.onnx").rename(tmp_path / "tokenizer.json")
    with pytest.raises(ValueError, match=r"has no encoder \(model\.onnx or onnx/model\.onnx or model\.pt2 or model\.pt\)"):
        find_text_encoder(str(tmp_path))
    with pytest.raises(ValueError, match=r"the model folder /no/such/folder does not exist"):
        find_text_encoder("/no/such/folder")


def test_text_embedder_refuses_an_encoder_with_other_inputs(tmp_path, text_encoders):
    import torch

    class Other(torch.nn.Module):
        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return tokens.float()

    shutil.copy(text_encoders["onnx"] / "tokenizer.json", tmp_path / "tokenizer.json")
    with warnings.catch_warnings():  # torch.jit is deprecated, still supported
        warnings.simplefilter("ignore")
        torch.jit.script(Other()).save(str(tmp_path / "model.pt"))
    with pytest.raises(ValueError, match=r"takes inputs \['tokens'\]; a text encoder takes \['input_ids', 'attention_mask'\]"):
        deepframes.TextEmbedder(model=str(tmp_path)).inference_plan()


def test_text_embedder_refuses_a_column_that_is_not_text(spark, text_encoders):
    numbers = spark.createDataFrame([(1,)], "text int")
    with pytest.raises(TypeError, match=r"column 'text' must be a string column; it is int"):
        deepframes.TextEmbedder(model=str(text_encoders["onnx"])).transform(numbers)


def test_text_embedder_hub_name_without_huggingface_hub_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails, installed or not
    with pytest.raises(ValueError, match=r"'someone/encoder' is not a local folder, and fetching it from the Hugging "
                                         r"Face Hub needs huggingface_hub: pip install huggingface_hub") as raised:
        find_text_encoder("someone/encoder")
    assert "\n" not in str(raised.value)


def test_text_embedder_hub_name_goes_through_snapshot_download(monkeypatch, spark, text_encoders, tmp_path):
    calls = []

    def snapshot_download(repo_id, allow_patterns):
        calls.append((repo_id, allow_patterns))
        if repo_id == "someone/offline":
            raise OSError("We couldn't connect to 'https://huggingface.co' to load the files.\nCheck your connection.")
        return str(text_encoders["onnx"])

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(snapshot_download=snapshot_download))
    found = find_text_encoder("someone/encoder")
    assert (found.tokenizer, found.encoder) == (str(text_encoders["onnx"] / "tokenizer.json"),
                                                str(text_encoders["onnx"] / "model.onnx"))
    assert calls[0][0] == "someone/encoder" and "tokenizer.json" in calls[0][1] and "model.onnx" in calls[0][1]
    # saved with its files, under the model's name: loading needs no Hub
    deepframes.TextEmbedder(model="someone/encoder").write().save(str(tmp_path / "stage"))
    loaded = deepframes.TextEmbedder.load(str(tmp_path / "stage"))
    assert loaded.getModel() == str(tmp_path / "stage" / "files" / "model" / "encoder")
    assert sorted(path.name for path in (tmp_path / "stage" / "files" / "model" / "encoder").iterdir()) == \
        ["model.onnx", "tokenizer.json"]
    with pytest.raises(ValueError, match=r"could not be fetched from the Hugging Face Hub \(OSError: We couldn't "
                                         r"connect to 'https://huggingface.co' to load the files\.\)") as raised:
        find_text_encoder("someone/offline")
    assert "\n" not in str(raised.value)


# ---- text-to-photo search: an image tower and a text tower in one space ------------------------

COLOURS = {"red": (220, 20, 30), "green": (25, 200, 40), "blue": (30, 40, 210), "black": (10, 10, 10),
           "white": (245, 245, 240), "yellow": (230, 220, 30)}
CAPTIONS = {"red": "a red photo", "green": "a green photo", "blue": "a blue photo", "black": "a black photo"}


def _image_tower(path, colours: np.ndarray, targets: np.ndarray) -> None:
    """An ONNX model: an 8x8 RGB image's mean colour -> the affine map that sends each of
    ``colours`` to its row of ``targets`` (four colours, four unknowns per output: exact)."""
    import torch

    solution = np.linalg.solve(np.hstack([colours / 255.0, np.ones((len(colours), 1))]), targets)

    class Tower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.project = torch.nn.Linear(3, targets.shape[1])
            with torch.no_grad():
                self.project.weight.copy_(torch.from_numpy(solution[:3].T.copy()))
                self.project.bias.copy_(torch.from_numpy(solution[3].copy()))

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return self.project(image.mean(dim=(2, 3)) / 255.0)

    with warnings.catch_warnings():  # the TorchScript-based exporter is deprecated, still supported
        warnings.simplefilter("ignore")
        torch.onnx.export(Tower().eval(), (torch.zeros(2, 3, 8, 8),), str(path), dynamo=False, input_names=["image"],
                          output_names=["features"], dynamic_axes={"image": {0: "images"}, "features": {0: "images"}})


def test_text_queries_find_their_photos_in_one_space(spark, text_encoders, tmp_path):
    names = list(CAPTIONS)
    captions = reference_embeddings(text_encoders["onnx"], [CAPTIONS[name] for name in names])
    _image_tower(tmp_path / "tower.onnx", np.array([COLOURS[name] for name in names], dtype=np.float64), captions)
    noise = np.random.default_rng(0)
    for name, colour in COLOURS.items():  # two distractors no caption names
        pixels = np.clip(np.array(colour) + noise.integers(-12, 13, size=(8, 8, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{name}.png")

    photos = deepframes.read_images(str(tmp_path / "*.png"), spark=spark)
    image_tower = deepframes.ModelTransformer(model=str(tmp_path / "tower.onnx"), inputCols=["image"],
                                              outputCols=["features"])
    items = image_tower.transform(photos).select(F.col("path").alias("id"), "features")
    texts = spark.createDataFrame([(CAPTIONS[name],) for name in names], "text string")
    text_tower = deepframes.TextEmbedder(model=str(text_encoders["onnx"]), maxLength=MAX_LENGTH)
    queries = text_tower.transform(texts).select(F.col("text").alias("id"), F.col("embedding").alias("features"))

    found = deepframes.nearest_neighbors(queries, items, k=1, idCol="id").collect()
    assert {row.query_id: row.item_id.rsplit("/", 1)[-1] for row in found} == \
        {CAPTIONS[name]: f"{name}.png" for name in names}
    assert all(row.distance < 0.05 for row in found)
