"""``TextEmbedder``: a transformer text encoder over a string column, one vector per text."""

from __future__ import annotations

import os

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasInputCol, HasOutputCol
from pyspark.ml.util import MLWriter
from pyspark.sql import DataFrame
from pyspark.sql.types import ArrayType, FloatType, StringType

from ..core.arrays import OutputSpec
from ..core.params import BOOLEAN, STRING, integer
from ..core.persistence import ModelFileStage
from ..core.shapes import UNKNOWN
from ..models.spec import ModelSpec
from ..models.text import MeanPooling, Tokenization, check_encoder_inputs, find_text_encoder
from .runner import InferencePlan, InputBinding, OutputBinding
from .stage import HasBatchSize, HasErrors, apply_plan, as_vectors, check_input_columns


class TextEmbedder(Transformer, HasInputCol, HasOutputCol, HasBatchSize, HasErrors, ModelFileStage):
    """Text embeddings from a transformer encoder, as an ML ``Vector`` column: each text's
    tokens through the encoder, their states averaged over the attention mask (mean pooling),
    then scaled to unit length.

    The model is a folder holding ``tokenizer.json`` (read by Hugging Face ``tokenizers``) and an
    encoder: ``model.onnx`` or ``onnx/model.onnx`` (ONNX Runtime), else ``model.pt2``
    (``torch.export``) or ``model.pt`` (TorchScript). The encoder takes ``input_ids`` and
    ``attention_mask`` (and ``token_type_ids`` if it asks), and gives ``last_hidden_state`` (its
    first output when none is so named); an output of one vector per text is only normalised. A
    name that is not a folder is fetched from the Hugging Face Hub (those files only) when
    ``huggingface_hub`` is installed and the network allows. Both files go to every executor as
    model files do; each loads once per Python worker, and the next batch is tokenized while the
    encoder runs. ``save`` copies the two files (a Hub model's too): the saved stage needs
    neither the folder nor the network.

    Parameters
    ----------
    inputCol : str
        A string column (default ``text``). A null text gives a null embedding (not an error).
    outputCol : str
        Default ``embedding``.
    model : str
        A folder as above, or a Hugging Face Hub name (``sentence-transformers/all-MiniLM-L6-v2``).
    maxLength : int
        Tokens kept per text, special tokens included (default 256; at most what the encoder's
        position table holds). Texts are padded to the longest of their batch, never further.
    batchSize : int
        Texts per encoder batch (default 64).
    normalize : bool
        Scale each embedding to unit length (default True), so cosine and Euclidean distances
        rank alike. A text of no tokens embeds as zeros.
    errors : {"column", "raise"}
        A text the encoder fails on (its batch is run again one text at a time to find it): a null
        embedding and the reason in the ``error`` column (default); ``"raise"``: the job fails.

    Raises
    ------
    ValueError
        At ``transform``: the folder lacks a file (named in the message), the Hub cannot be
        reached, or the encoder's inputs are not a tokenizer's.

    Examples
    --------
    A tokenizer and an encoder made here (any Hugging Face encoder exported to ONNX works alike):

    >>> import os, tempfile, torch, tokenizers
    >>> import deepframes
    >>> folder = tempfile.mkdtemp()
    >>> vocabulary = {"[PAD]": 0, "[UNK]": 1, "a": 2, "cat": 3, "dog": 4, "sleeps": 5}
    >>> tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocabulary, unk_token="[UNK]"))
    >>> tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    >>> tokenizer.save(os.path.join(folder, "tokenizer.json"))
    >>> class Encoder(torch.nn.Module):  # one state of 8 numbers per token
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.embedding = torch.nn.Embedding(len(vocabulary), 8)
    ...     def forward(self, input_ids, attention_mask):
    ...         return self.embedding(input_ids)
    >>> batch, tokens = torch.export.Dim("batch"), torch.export.Dim("tokens")
    >>> example = (torch.ones(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.long))
    >>> program = torch.export.export(Encoder(), example, dynamic_shapes={
    ...     "input_ids": {0: batch, 1: tokens}, "attention_mask": {0: batch, 1: tokens}})
    >>> torch.export.save(program, os.path.join(folder, "model.pt2"))
    >>> spark = deepframes.session("local[2]")
    >>> texts = spark.createDataFrame([("a cat sleeps",), ("a dog",), (None,)], "text string")
    >>> embedder = deepframes.TextEmbedder(model=folder, batchSize=2)
    >>> [None if row.embedding is None else row.embedding.size for row in embedder.transform(texts).collect()]
    [8, 8, None]
    >>> embedder.write().overwrite().save(os.path.join(folder, "embedder"))
    >>> deepframes.TextEmbedder.load(os.path.join(folder, "embedder")).getBatchSize()
    2
    >>> import shutil; shutil.rmtree(folder)
    """

    model = Param(Params._dummy(), "model", "a folder of tokenizer.json and model.onnx (or model.pt), or a Hub name",
                  typeConverter=TypeConverters.toString)
    maxLength = Param(Params._dummy(), "maxLength", "tokens kept per text, special tokens included",
                      typeConverter=TypeConverters.toInt)
    normalize = Param(Params._dummy(), "normalize", "scale each embedding to unit length",
                      typeConverter=TypeConverters.toBoolean)

    file_params = ("model",)
    _parameter_constraints = {"model": STRING, "maxLength": integer(1), "normalize": BOOLEAN}

    @keyword_only
    def __init__(self, *, inputCol="text", outputCol="embedding", model=None, maxLength=256, batchSize=64,
                 normalize=True, errors="column"):
        super().__init__()
        self._setDefault(inputCol="text", outputCol="embedding", maxLength=256, batchSize=64, normalize=True)
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, inputCol="text", outputCol="embedding", model=None, maxLength=256, batchSize=64,
                  normalize=True, errors="column"):
        return self._set(**self._input_kwargs)

    def getModel(self) -> str:
        return self.getOrDefault(self.model)

    def setModel(self, value: str) -> TextEmbedder:
        return self._set(model=value)

    def getMaxLength(self) -> int:
        return self.getOrDefault(self.maxLength)

    def setMaxLength(self, value: int) -> TextEmbedder:
        return self._set(maxLength=value)

    def getNormalize(self) -> bool:
        return self.getOrDefault(self.normalize)

    def setNormalize(self, value: bool) -> TextEmbedder:
        return self._set(normalize=value)

    def _encoder_folder(self):
        if not self.isDefined(self.model):
            raise ValueError("TextEmbedder needs a model: TextEmbedder(model='folder or Hugging Face Hub name').")
        return find_text_encoder(self.getModel())

    def inference_plan(self) -> InferencePlan:
        """What the stage runs on each batch: tokenize, encode, pool. Planning reads the encoder's
        input names (an ONNX graph without running it; a TorchScript file is loaded once)."""
        max_length = self.getMaxLength()
        found = self._encoder_folder()
        spec = ModelSpec.from_file(found.encoder)
        inputs, outputs = spec.signature()
        names = check_encoder_inputs([info.name for info in inputs], found.encoder)
        tokenization = Tokenization.from_file(found.tokenizer, max_length, names)
        binding = InputBinding(self.getInputCol(), "input_ids", tokenization=tokenization)
        states = "last_hidden_state" if any(info.name == "last_hidden_state" for info in outputs) else None
        output = OutputBinding(states, OutputSpec(self.getOutputCol(), "float32", ArrayType(FloatType()), (UNKNOWN,)))
        return InferencePlan(spec, (binding,), (output,), self.getBatchSize(),
                             postprocess=MeanPooling(self.getNormalize()))

    def _transform(self, dataset: DataFrame) -> DataFrame:
        column = self.getInputCol()
        check_input_columns(dataset, [column], "TextEmbedder")
        if not isinstance(dataset.schema[column].dataType, StringType):
            raise TypeError(f"TextEmbedder: column {column!r} must be a string column; it is "
                            f"{dataset.schema[column].dataType.simpleString()}. Cast it (F.col({column!r}).cast('string')).")
        plan = self.inference_plan()
        embeddings = apply_plan(dataset, plan.shipped(dataset.sparkSession), "TextEmbedder", self.getErrors())
        return as_vectors(embeddings, self.getOutputCol())

    def write(self) -> MLWriter:
        """Saves the tokenizer and the encoder file with the stage (not the rest of a model
        repository), so the saved stage runs without the folder or the network."""
        stage = self.copy()
        if self.isDefined(self.model):
            # named like the folder or the Hub model ("owner/name" -> "name"), not a snapshot's hash
            stage._set(model=self._encoder_folder().packed(os.path.basename(self.getModel().rstrip("/")) or "model"))
        return super(TextEmbedder, stage).write()


__all__ = ["TextEmbedder"]
