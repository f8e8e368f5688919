"""``ModelTransformer``: any model file (ONNX, Keras, PyTorch) over DataFrame tensor columns."""

from __future__ import annotations

from dataclasses import replace

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasInputCols, HasOutputCols
from pyspark.sql import DataFrame
from pyspark.sql.types import BinaryType

from ..blocks.arrays import OutputSpec
from ..blocks.shapes import recorded_shape
from .model_spec import ModelSpec
from .preprocess import ImagePreset
from .runner import InferencePlan, InputBinding, OutputBinding
from .stage import (
    ModelFileStage,
    apply_plan,
    check_batch_size,
    check_input_columns,
    dry_run,
)


class HasBatchSize(Params):
    batchSize = Param(Params._dummy(), "batchSize", "rows per model batch (the last of a partition may have fewer)",
                      typeConverter=TypeConverters.toInt)

    def getBatchSize(self) -> int:
        return self.getOrDefault(self.batchSize)


def _image_preset(model_shape: tuple[int, ...]) -> ImagePreset:
    """RGB 0-255 floats in the layout and size the model's image input declares."""
    if len(model_shape) == 4 and model_shape[1] == 3:
        return ImagePreset((model_shape[2], model_shape[3]), "NCHW")
    if len(model_shape) == 4 and model_shape[3] == 3:
        return ImagePreset((model_shape[1], model_shape[2]), "NHWC")
    raise ValueError(
        f"An image column needs a model input of shape [?, 3, H, W] or [?, H, W, 3]; this one is "
        f"{list(model_shape)}. Convert the images yourself (map_blocks) or use ImageFeaturizer."
    )


class ModelTransformer(Transformer, HasInputCols, HasOutputCols, HasBatchSize, ModelFileStage):
    """Run a model file over DataFrame columns, a batch of rows at a time, on every executor.

    Columns map to model inputs in order (``inputNames``, default: the model's inputs in order);
    outputs map to new columns (``outputNames`` -> ``outputCols``, default: every model output,
    named as in the model). Tensor columns are numbers, arrays or vectors shaped by their recorded
    shape; an image struct column (from ``read_images``) is resized to the model's input and fed
    as RGB 0-255 floats. Rows with a null input get null outputs. The model loads once per Python
    worker; the next batch is prepared while the model runs. ``save`` copies the model file.

    Parameters
    ----------
    model : str
        ``.onnx``, ``.keras``, ``.h5``, ``.pt`` (TorchScript), ``.pt2`` (``torch.export``) file or an
        exported SavedModel folder.
    inputCols, outputCols, inputNames, outputNames : list of str
    framework : str, optional
        ``onnx``, ``keras`` or ``torch`` when the file name does not tell.
    batchSize : int
        Rows per model batch (default 64).

    Examples
    --------
    >>> import deepframes, numpy as np
    >>> spark = deepframes.session("local[2]")
    >>> df = deepframes.read_images("../shared/data/pets/images/Bengal_1*.jpg", size=(224, 224))
    >>> stage = deepframes.ModelTransformer(model="../shared/models/squeezenet1.1.onnx",
    ...     inputCols=["image"], outputNames=["features"], outputCols=["features"])
    >>> stage.transform(df).select("features").first().features.__len__()
    512
    """

    model = Param(Params._dummy(), "model", "path of the model file or folder", typeConverter=TypeConverters.toString)
    framework = Param(Params._dummy(), "framework", "onnx, keras or torch; empty: from the file name",
                      typeConverter=TypeConverters.toString)
    inputNames = Param(Params._dummy(), "inputNames", "model input fed by each input column",
                       typeConverter=TypeConverters.toListString)
    outputNames = Param(Params._dummy(), "outputNames", "model outputs to keep",
                        typeConverter=TypeConverters.toListString)

    file_params = ("model",)

    @keyword_only
    def __init__(self, *, model=None, inputCols=None, outputCols=None, inputNames=None, outputNames=None,
                 framework="", batchSize=64):
        super().__init__()
        self._setDefault(framework="", batchSize=64)
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, model=None, inputCols=None, outputCols=None, inputNames=None, outputNames=None,
                  framework="", batchSize=64):
        return self._set(**self._input_kwargs)

    def _spec(self) -> ModelSpec:
        if not self.isDefined(self.model):
            raise ValueError("ModelTransformer needs a model: ModelTransformer(model='model.onnx', ...).")
        return ModelSpec.from_file(self.getOrDefault(self.model), self.getOrDefault(self.framework) or None)

    def _transform(self, dataset: DataFrame) -> DataFrame:
        check_batch_size(self.getBatchSize())
        spec = self._spec()
        engine = spec.load()
        columns = self.getInputCols() if self.isDefined(self.inputCols) else None
        if not columns:
            raise ValueError("ModelTransformer needs inputCols: the columns to feed to the model.")
        check_input_columns(dataset, columns, "ModelTransformer")
        input_names = self.getOrDefault(self.inputNames) if self.isDefined(self.inputNames) else [i.name for i in engine.inputs][: len(columns)]
        if len(input_names) != len(columns):
            raise ValueError(
                f"ModelTransformer: {len(columns)} inputCols {columns} but {len(input_names)} inputNames "
                f"{input_names}; give one model input per column."
            )
        bindings = []
        for column, name in zip(columns, input_names):
            info = next((i for i in engine.inputs if i.name == name), None)
            is_image = is_image_column(dataset, column)
            shape = recorded_shape(dataset.schema[column])
            bindings.append(InputBinding(column, name, None if shape is None else tuple(shape),
                                         _image_preset(info.shape) if is_image and info else None))
        output_names = self.getOrDefault(self.outputNames) if self.isDefined(self.outputNames) else [o.name for o in engine.outputs]
        output_cols = self.getOutputCols() if self.isDefined(self.outputCols) else list(output_names)
        if len(output_cols) != len(output_names):
            raise ValueError(
                f"ModelTransformer: {len(output_names)} outputNames {output_names} but {len(output_cols)} "
                f"outputCols {output_cols}; give one column per model output."
            )
        # The output columns' types are read off the dry run; until then they are placeholders.
        placeholder = tuple(OutputBinding(name, OutputSpec(col, "float32", None, ())) for name, col in zip(output_names, output_cols))
        plan = InferencePlan(spec, tuple(bindings), placeholder, self.getBatchSize())
        plan = dry_run(dataset, plan, output_cols)
        return apply_plan(dataset, replace(plan, model=spec.ship(dataset.sparkSession)))


def is_image_struct_field(df: DataFrame, column: str) -> bool:
    data_type = df.schema[column].dataType
    names = getattr(data_type, "names", None) or []
    return {"height", "width", "nChannels", "data"} <= set(names)


def is_image_column(df: DataFrame, column: str) -> bool:
    """An image struct column, or a binary column of encoded image files."""
    return is_image_struct_field(df, column) or isinstance(df.schema[column].dataType, BinaryType)


__all__ = ["ModelTransformer", "is_image_column"]
