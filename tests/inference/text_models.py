"""A tiny text encoder made by the tests: a WordLevel tokenizer trained on a few sentences and a
two-layer transformer (width 32) that honours its attention mask, saved as ONNX (with token type
ids) and as TorchScript (without); and the embeddings computed in-process, one text at a time."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

WIDTH = 32
POSITIONS = 64
MAX_LENGTH = 16  # below POSITIONS: the stage must cut longer texts
CORPUS = [
    "a red photo of a square", "a green photo of a circle", "a blue photo of the sky",
    "a black photo at night", "a white photo of snow", "a yellow photo of a small dog",
    "the cat sleeps on the warm mat", "two dogs run in the park",
]


class _Layer(torch.nn.Module):
    """Self-attention over the kept tokens (padding gets a -1e4 score: no weight) and a feed-forward."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = torch.nn.Linear(width, 3 * width)
        self.out = torch.nn.Linear(width, width)
        self.norm1 = torch.nn.LayerNorm(width)
        self.norm2 = torch.nn.LayerNorm(width)
        self.feed = torch.nn.Sequential(torch.nn.Linear(width, 2 * width), torch.nn.ReLU(), torch.nn.Linear(2 * width, width))

    def forward(self, states: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        query, key, value = (part.unflatten(-1, (self.heads, -1)).transpose(1, 2) for part in self.qkv(states).chunk(3, dim=-1))
        scores = query @ key.transpose(-1, -2) / math.sqrt(query.shape[-1]) + (1.0 - keep[:, None, None, :]) * -1e4
        attended = (scores.softmax(-1) @ value).transpose(1, 2).flatten(2)
        states = self.norm1(states + self.out(attended))
        return self.norm2(states + self.feed(states))


class TinyEncoder(torch.nn.Module):
    """Token and position embeddings, then two layers: ``last_hidden_state`` (texts, tokens, 32)."""

    def __init__(self, vocabulary_size: int) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(vocabulary_size, WIDTH)
        self.position = torch.nn.Embedding(POSITIONS, WIDTH)
        self.token_type = torch.nn.Embedding(2, WIDTH)
        self.layers = torch.nn.ModuleList([_Layer(WIDTH, 4) for _ in range(2)])

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1]).unsqueeze(0)
        states = self.embedding(input_ids) + self.position(positions) + self.token_type(token_type_ids)
        keep = attention_mask.to(states.dtype)
        for layer in self.layers:
            states = layer(states, keep)
        return states


class WithTokenTypes(torch.nn.Module):
    def __init__(self, encoder: TinyEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        return self.encoder.encode(input_ids, attention_mask, token_type_ids)


class WithoutTokenTypes(torch.nn.Module):
    def __init__(self, encoder: TinyEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder.encode(input_ids, attention_mask, torch.zeros_like(input_ids))


def make_tokenizer(path: Path) -> Tokenizer:
    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(CORPUS, trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"]))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tokenizer.token_to_id("[CLS]")),
                                                 ("[SEP]", tokenizer.token_to_id("[SEP]"))])
    tokenizer.save(str(path))
    return tokenizer


def tiny_encoder(vocabulary_size: int) -> TinyEncoder:
    """The encoder both formats save: the same weights every time (seeded)."""
    torch.manual_seed(0)
    return TinyEncoder(vocabulary_size).eval()


def build_text_encoders(folder: Path) -> dict[str, Path]:
    """``{"onnx": folder, "torchscript": folder}``, each of tokenizer.json and the encoder."""
    made = {}
    for kind in ("onnx", "torchscript"):
        target = made[kind] = folder / kind
        target.mkdir()
        encoder = tiny_encoder(make_tokenizer(target / "tokenizer.json").get_vocab_size())
        with warnings.catch_warnings():  # the TorchScript-based exporter and torch.jit are deprecated, still supported
            warnings.simplefilter("ignore")
            if kind == "torchscript":
                torch.jit.script(WithoutTokenTypes(encoder).eval()).save(str(target / "model.pt"))
                continue
            example = tuple(torch.ones(2, 5, dtype=torch.long) for _ in range(3))
            axes = {0: "texts", 1: "tokens"}
            torch.onnx.export(WithTokenTypes(encoder).eval(), example, str(target / "model.onnx"), dynamo=False,
                              input_names=["input_ids", "attention_mask", "token_type_ids"],
                              output_names=["last_hidden_state"],
                              dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                                            "last_hidden_state": axes})
    return made


def reference_embeddings(folder: Path, texts: list[str], max_length: int = MAX_LENGTH) -> np.ndarray:
    """Each text alone (no padding) through the encoder in PyTorch, mean-pooled and normalised
    in float64: what the stage must give."""
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(max_length)
    encoder = tiny_encoder(tokenizer.get_vocab_size())
    rows = []
    for text in texts:
        encoding = tokenizer.encode(text)
        ids = torch.tensor([encoding.ids])
        with torch.no_grad():
            states = encoder.encode(ids, torch.ones_like(ids), torch.tensor([encoding.type_ids]))[0].double()
        mean = states.mean(dim=0)
        rows.append((mean / mean.norm()).numpy())
    return np.stack(rows)
