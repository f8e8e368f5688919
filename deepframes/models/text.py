"""Text encoders: a folder of ``tokenizer.json`` and a transformer encoder (found locally or on
the Hugging Face Hub), a text column laid out as the encoder's inputs, and mean pooling.

What ``presets.py`` is to images, ``Tokenization`` is to text: it runs where each batch is
prepared (in the thread beside the model), so the next batch is tokenized while the model runs.
``MeanPooling`` runs on the encoder's output with the attention mask the tokenizer made.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa

TOKENIZER_FILE = "tokenizer.json"
# Looked for in this order: ONNX first (sentence-transformers repositories keep it in onnx/).
ENCODER_FILES = ("model.onnx", os.path.join("onnx", "model.onnx"), "model.pt2", "model.pt")
# What a text encoder may take (by these names, as Hugging Face exports them); the first two it must.
ENCODER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_REQUIRED_INPUTS = ENCODER_INPUTS[:2]
_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
_FOLDER_HINT = f"a folder holding {TOKENIZER_FILE} and an encoder ({', '.join(ENCODER_FILES)})"

# (tokenizer digest, max length) -> tokenizer, for as long as the (reused) Python worker lives.
_TOKENIZERS: dict[tuple[str, int], object] = {}


@dataclass(frozen=True)
class TextEncoderFolder:
    """The two files a text encoder needs, found in ``folder``."""

    folder: str
    tokenizer: str
    encoder: str

    def packed(self, name: str) -> str:
        """A folder called ``name`` of just the two files (linked, else copied): what a saved
        stage keeps, without the other weights a model repository holds."""
        from .._scratch import scratch_folder
        from ..core.files import _link_or_copy

        target = os.path.join(scratch_folder(), name)
        os.makedirs(target)
        for path in (self.tokenizer, self.encoder):
            _link_or_copy(path, os.path.join(target, os.path.basename(path)))
        return target


def find_text_encoder(model: str) -> TextEncoderFolder:
    """The tokenizer and encoder files of ``model``: a local folder, else a Hugging Face Hub
    name fetched (or read from its cache) with ``huggingface_hub`` when it is installed.

    Raises
    ------
    ValueError
        The folder does not exist or lacks a file, or the Hub cannot be reached; one line says which.
    """
    if not isinstance(model, str) or not model:
        raise ValueError(f"TextEmbedder needs a model: {_FOLDER_HINT}, or a Hugging Face Hub name. Got {model!r}.")
    if os.path.isdir(model):
        return _in_folder(model)
    if os.path.exists(model) or not _HUB_NAME.fullmatch(model):
        raise ValueError(f"TextEmbedder: the model folder {model} does not exist (or is not a folder). "
                         f"Give {_FOLDER_HINT}, or a Hugging Face Hub name.")
    return _in_folder(_from_hub(model))


def _in_folder(folder: str) -> TextEncoderFolder:
    folder = os.path.abspath(folder)
    tokenizer = os.path.join(folder, TOKENIZER_FILE)
    encoder = next((os.path.join(folder, name) for name in ENCODER_FILES if os.path.isfile(os.path.join(folder, name))),
                   None)
    missing = ([] if os.path.isfile(tokenizer) else [TOKENIZER_FILE]) + \
              ([] if encoder else [f"encoder ({' or '.join(ENCODER_FILES)})"])
    if missing:
        found = sorted(os.listdir(folder))
        raise ValueError(
            f"TextEmbedder: the model folder {folder} has no {' and no '.join(missing)}; it holds {found[:10]}. "
            f"Expected {_FOLDER_HINT}: save the tokenizer with tokenizer.save(...) and the encoder with "
            "torch.onnx.export or torch.jit.save."
        )
    return TextEncoderFolder(folder, tokenizer, encoder)


def _from_hub(name: str) -> str:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ValueError(
            f"TextEmbedder: model {name!r} is not a local folder, and fetching it from the Hugging Face Hub "
            f"needs huggingface_hub: pip install huggingface_hub. Or give {_FOLDER_HINT}."
        ) from None
    try:
        return snapshot_download(repo_id=name, allow_patterns=[TOKENIZER_FILE, *ENCODER_FILES])
    except Exception as error:  # noqa: BLE001 - the Hub client has its own errors for offline, unknown, gated
        reason = (str(error).strip().splitlines() or [""])[0]
        raise ValueError(
            f"TextEmbedder: model {name!r} is not a local folder and could not be fetched from the Hugging Face "
            f"Hub ({type(error).__name__}: {reason}). Check the name and the network (with HF_HUB_OFFLINE=1 only "
            f"the local cache is read), or give {_FOLDER_HINT}."
        ) from None


def check_encoder_inputs(names: list[str], encoder: str) -> tuple[str, ...]:
    """The encoder's input names, checked to be those a tokenizer fills."""
    unknown = [name for name in names if name not in ENCODER_INPUTS]
    absent = [name for name in _REQUIRED_INPUTS if name not in names]
    if unknown or absent:
        raise ValueError(
            f"TextEmbedder: the encoder {encoder} takes inputs {names}; a text encoder takes "
            f"{list(_REQUIRED_INPUTS)} and optionally 'token_type_ids', by those names. Export it with "
            "input_names=['input_ids', 'attention_mask'] (torch.onnx.export) or name forward's parameters so."
        )
    return tuple(names)


@dataclass(frozen=True)
class Tokenization:
    """How a text column becomes the encoder's inputs: ``tokenizer.json``'s tokens (special
    tokens included), cut to ``max_length``, padded to the longest text of the batch.

    ``inputs`` are the encoder's input names (of ``ENCODER_INPUTS``): only those are made.
    """

    path: str
    digest: str
    max_length: int
    inputs: tuple[str, ...] = _REQUIRED_INPUTS
    shipped_name: str | None = None

    @classmethod
    def from_file(cls, path: str, max_length: int, inputs: tuple[str, ...] = _REQUIRED_INPUTS) -> Tokenization:
        from .spec import file_digest

        return cls(os.path.abspath(path), file_digest(path), max_length, inputs)

    def ship(self, spark) -> Tokenization:
        """Send the tokenizer file to every executor, as model files go."""
        if self.shipped_name:
            return self
        from ..core.files import digest_named_copy, ship_file

        copy = digest_named_copy(self.path, self.digest)
        return replace(self, shipped_name=ship_file(spark, copy, "A tokenizer file"))

    def tokenizer(self):
        """The tokenizer, loaded once per Python worker and cut to ``max_length`` tokens."""
        key = (self.digest, self.max_length)
        tokenizer = _TOKENIZERS.get(key)
        if tokenizer is None:
            from ..core.files import shipped_path
            from ..engines.base import require

            tokenizers = require("tokenizers", "text", "TextEmbedder")
            path = shipped_path(self.shipped_name, self.path) if self.shipped_name else self.path
            tokenizer = tokenizers.Tokenizer.from_file(path)
            tokenizer.no_padding()  # padded here, to the batch's longest text
            tokenizer.enable_truncation(self.max_length)
            _TOKENIZERS[key] = tokenizer
        return tokenizer

    def encode(self, texts: pa.Array) -> dict[str, np.ndarray]:
        """A null-free string array -> ``{input name: int64 (rows, tokens)}``.

        One text at a time: Spark runs a task per core already, so the tokenizer's own thread
        pool would only compete with them.
        """
        tokenizer = self.tokenizer()
        encodings = [tokenizer.encode(text) for text in texts.to_pylist()]
        width = max([len(encoding.ids) for encoding in encodings] + [1])
        feeds = {
            "input_ids": np.full((len(encodings), width), _pad_id(tokenizer), dtype=np.int64),
            "attention_mask": np.zeros((len(encodings), width), dtype=np.int64),
            "token_type_ids": np.zeros((len(encodings), width), dtype=np.int64),
        }
        for row, encoding in enumerate(encodings):
            length = len(encoding.ids)
            feeds["input_ids"][row, :length] = encoding.ids
            feeds["attention_mask"][row, :length] = encoding.attention_mask
            feeds["token_type_ids"][row, :length] = encoding.type_ids
        return {name: feeds[name] for name in self.inputs}


def _pad_id(tokenizer) -> int:
    """The tokenizer's own padding id, else its ``[PAD]``/``<pad>`` token's, else 0 (masked out
    either way: only an encoder that ignores its attention mask sees it)."""
    for token in ("[PAD]", "<pad>"):
        found = tokenizer.token_to_id(token)
        if found is not None:
            return int(found)
    return 0


@dataclass(frozen=True)
class MeanPooling:
    """An encoder's per-token states -> one vector per text: the mean over the tokens the
    attention mask keeps, then (``normalize``) unit length. An output of one vector per text
    (an encoder that pools itself) is only normalised. A text of no tokens gives zeros.
    """

    normalize: bool = True

    def __call__(self, states: np.ndarray, feeds: dict[str, np.ndarray]) -> np.ndarray:
        states = np.asarray(states)
        if states.ndim == 3:
            keep = feeds["attention_mask"][:, :, np.newaxis] > 0
            if keep.shape[1] != states.shape[1]:
                raise ValueError(f"The encoder gave {states.shape[1]} states per text for {keep.shape[1]} tokens; "
                                 "a text encoder keeps one state per input token (last_hidden_state).")
            pooled = np.where(keep, states, 0.0).sum(axis=1, dtype=np.float64) / np.maximum(keep.sum(axis=1), 1)
        elif states.ndim == 2:
            pooled = states.astype(np.float64)
        else:
            raise ValueError(f"The encoder's output has shape {list(states.shape)}; expected (texts, tokens, width) "
                             "states or (texts, width) vectors.")
        if self.normalize:
            pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled.astype(np.float32)


__all__ = ["ENCODER_FILES", "ENCODER_INPUTS", "MeanPooling", "TOKENIZER_FILE", "TextEncoderFolder", "Tokenization",
           "check_encoder_inputs", "find_text_encoder"]
