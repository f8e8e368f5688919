"""``ModelTransformer``: any model file (ONNX, Keras, PyTorch) over DataFrame tensor columns."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasInputCols, HasOutputCols
from pyspark.sql import DataFrame
from pyspark.sql.types import ArrayType, BinaryType, FloatType, StructField, StructType

from ..core.arrays import OutputSpec
from ..core.params import STRING, STRINGS, one_of
from ..core.persistence import ModelFileStage
from ..core.sampling import sample
from ..core.shapes import UNKNOWN, column_shape, dtype_name, format_shape, recorded_shape
from ..engines import FRAMEWORKS, TensorInfo
from ..models.presets import ImagePreset
from ..models.spec import ModelSpec
from .runner import InferencePlan, InputBinding, OutputBinding, model_outputs, prepare
from .stage import HasBatchSize, HasErrors, apply_plan, check_input_columns


def _image_preset(info: TensorInfo) -> ImagePreset:
    """RGB 0-255 floats in the layout and size the model's image input declares."""
    shape = info.shape
    if shape is not None and len(shape) == 4 and shape[1] == 3 and min(shape[2:]) > 0:
        return ImagePreset((shape[2], shape[3]), "NCHW")
    if shape is not None and len(shape) == 4 and shape[3] == 3 and min(shape[1:3]) > 0:
        return ImagePreset((shape[1], shape[2]), "NHWC")
    received = "unknown (a TorchScript file or factory: save it with torch.export)" if shape is None else format_shape(shape)
    raise ValueError(
        f"An image column needs a model input of shape [?, 3, H, W] or [?, H, W, 3]; input "
        f"{info.name!r} is {received}. Convert the images yourself (map_blocks) or use ImageFeaturizer."
    )


class ModelTransformer(Transformer, HasInputCols, HasOutputCols, HasBatchSize, HasErrors, ModelFileStage):
    """Run a model file over DataFrame columns, a batch of rows at a time, on every executor.

    Columns map to model inputs in order (``inputNames``, default: the model's inputs in order);
    outputs map to new columns (``outputNames`` -> ``outputCols``, default: every model output,
    named as in the model). Tensor columns are numbers, arrays or vectors shaped by their recorded
    shape; an image struct column (from ``read_images``) is resized to the model's input and fed
    as RGB 0-255 floats. Rows with a null input get null outputs. The model loads once per Python
    worker; the next batch is prepared while the model runs. ``save`` copies the model file;
    ``ModelTransformer.load`` gives back the class that was saved (a fitted ``KerasModel`` loads
    as a ``KerasModel``).

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
    errors : {"column", "raise"}
        A row the model raises on (its batch is run again one row at a time to find it): null
        outputs and the reason in the ``error`` column, which is added, or filled where an
        ``error`` column from ``read_images`` is null (default); or ``"raise"``: the job fails.

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
    _parameter_constraints = {
        "model": STRING, "framework": one_of("", *FRAMEWORKS), "inputNames": STRINGS, "outputNames": STRINGS,
    }

    @keyword_only
    def __init__(self, *, model=None, inputCols=None, outputCols=None, inputNames=None, outputNames=None,
                 framework="", batchSize=64, errors="column"):
        super().__init__()
        self._setDefault(framework="", batchSize=64)
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, model=None, inputCols=None, outputCols=None, inputNames=None, outputNames=None,
                  framework="", batchSize=64, errors="column"):
        return self._set(**self._input_kwargs)

    def _spec(self) -> ModelSpec:
        if not self.isDefined(self.model):
            raise ValueError("ModelTransformer needs a model: ModelTransformer(model='model.onnx', ...).")
        return ModelSpec.from_file(self.getOrDefault(self.model), self.getOrDefault(self.framework) or None)

    def _columns(self) -> list[str]:
        columns = self.getInputCols() if self.isDefined(self.inputCols) else None
        if not columns:
            raise ValueError("ModelTransformer needs inputCols: the columns to feed to the model.")
        return list(columns)

    def inference_plan(self, schema: StructType | None = None) -> InferencePlan:
        """What the stage runs on each batch, planned from the model's signature (read once per
        model, never run) and the input columns' types and recorded shapes in ``schema``.
        Without a schema (SQL), image inputs take image columns and other inputs tensors."""
        spec = self._spec()
        model_inputs, model_outputs = spec.signature()
        columns = self._columns()
        input_names = self._names(self.inputNames, [info.name for info in model_inputs][: len(columns)])
        if len(input_names) != len(columns):
            raise ValueError(
                f"ModelTransformer: {len(columns)} inputCols {columns} but {len(input_names)} inputNames "
                f"{input_names}; give one model input per column."
            )
        bindings = tuple(
            _binding(column, _find(model_inputs, name, "input", "inputNames"), schema)
            for column, name in zip(columns, input_names)
        )
        output_names = self._names(self.outputNames, [info.name for info in model_outputs])
        output_cols = self.getOutputCols() if self.isDefined(self.outputCols) else list(output_names)
        if len(output_cols) != len(output_names):
            raise ValueError(
                f"ModelTransformer: {len(output_names)} outputNames {output_names} but {len(output_cols)} "
                f"outputCols {output_cols}; give one column per model output."
            )
        outputs = tuple(
            OutputBinding(name, _output_spec(column, _find(model_outputs, name, "output", "outputNames")))
            for name, column in zip(output_names, output_cols)
        )
        return InferencePlan(spec, bindings, outputs, self.getBatchSize())

    def _names(self, param: Param, default: list[str]) -> list[str]:
        return list(self.getOrDefault(param)) if self.isDefined(param) else default

    def _transform(self, dataset: DataFrame) -> DataFrame:
        check_input_columns(dataset, self._columns(), "ModelTransformer")
        plan = self.inference_plan(dataset.schema)
        if any(binding.spec.dtype == _UNKNOWN_DTYPE for binding in plan.outputs):
            plan = outputs_from_zeros(dataset.schema, plan) or outputs_from_first_rows(dataset, plan)
        return apply_plan(dataset, plan.shipped(dataset.sparkSession), "ModelTransformer", self.getErrors())


# TorchScript files and factories cannot tell their outputs before they run: such outputs are
# planned by running the model once on the driver on a row of zeros shaped like the input columns
# (no Spark job); only when a column's cell shape is unknown, from the first rows (one small job),
# or as flat float arrays when there are none.
_UNKNOWN_DTYPE = "unknown"


def _find(infos: list[TensorInfo], name: str, kind: str, param: str) -> TensorInfo:
    info = next((info for info in infos if info.name == name), None)
    if info is None:
        raise ValueError(
            f"The model has no {kind} {name!r}; its {kind}s are {[i.name for i in infos]}. "
            f"Set {param} to some of them."
        )
    return info


def _binding(column: str, info: TensorInfo, schema: StructType | None) -> InputBinding:
    if schema is None:  # SQL: the column's type is known only per batch
        image_like = info.shape is not None and len(info.shape) == 4 and 3 in (info.shape[1], info.shape[3])
        shape = tuple(info.shape) if info.shape is not None and all(s > 0 for s in info.shape[1:]) else None
        return InputBinding(column, info.name, shape, _image_preset(info) if image_like else None, info.shape)
    field = schema[column]
    if is_image_field(field):
        return InputBinding(column, info.name, None, _image_preset(info))
    received = column_shape(field)
    if info.shape is not None and not _fits(received, info.shape):
        raise ValueError(
            f"Column {column!r} gives model input {info.name!r} batches of shape "
            f"{format_shape(received)}; the model expects {format_shape(info.shape)}. Record the "
            f"column's shape (deepframes.append_shape(df, {column!r}, {format_shape(info.shape)})) "
            "or pick another input."
        )
    recorded = recorded_shape(field)
    return InputBinding(column, info.name, None if recorded is None else tuple(recorded), None, info.shape)


def _fits(received: list[int], expected: tuple[int, ...]) -> bool:
    if len(expected) <= 1:
        return True
    return len(received) == len(expected) and all(e < 0 or r < 0 or e == r for r, e in zip(received[1:], expected[1:]))


def _output_spec(column: str, info: TensorInfo) -> OutputSpec:
    if info.shape is None:
        return OutputSpec(column, _UNKNOWN_DTYPE, ArrayType(FloatType()), (UNKNOWN,))
    cells = tuple(info.shape[1:])
    if all(size > 0 for size in cells):
        return OutputSpec.infer(column, np.empty((0, *cells), dtype=info.dtype))
    return OutputSpec.infer(column, np.empty((0, 1), dtype=info.dtype), variable=True)


def outputs_from_zeros(schema: StructType, plan: InferencePlan) -> InferencePlan | None:
    """Plan unknown outputs from one run of the model on a row of zeros (on the driver, no Spark
    job); None when an input column's cell shape is not known from its type or recorded shape."""
    feeds = {}
    for binding in plan.inputs:
        if binding.preset is not None:
            height, width = binding.preset.size
            feeds[binding.input_name] = binding.preset.normalise(np.zeros((1, height, width, 3), np.float32))
            continue
        field = schema[binding.column]
        cells, dtype = column_shape(field)[1:], dtype_name(field.dataType)
        if any(size < 0 for size in cells) or dtype not in _NUMERIC_DTYPES:
            return None
        feeds[binding.input_name] = np.zeros((1, *cells), dtype=dtype)
    return _planned_outputs(plan, model_outputs(feeds, plan, 1))


_NUMERIC_DTYPES = {"float16", "float32", "float64", "int8", "int16", "int32", "int64", "bool"}


def _planned_outputs(plan: InferencePlan, values: list[np.ndarray]) -> InferencePlan:
    """The plan with its unknown outputs typed like ``values`` (one row each)."""
    outputs = tuple(
        OutputBinding(binding.output_name, OutputSpec.infer(binding.spec.name, value))
        if binding.spec.dtype == _UNKNOWN_DTYPE else binding
        for binding, value in zip(plan.outputs, values)
    )
    return replace(plan, outputs=outputs)


def outputs_from_first_rows(dataset: DataFrame, plan: InferencePlan) -> InferencePlan:
    """Plan unknown outputs by running the model on the first rows (a model that cannot
    describe its outputs: a TorchScript file or a factory; ``torch.export`` avoids this job)."""
    table = sample(dataset, [binding.column for binding in plan.inputs])
    prepared = prepare(table.combine_chunks().to_batches()[0], plan) if table.num_rows else None
    if prepared is None or prepared.num_rows == 0:
        flat = tuple(replace(b, spec=replace(b.spec, dtype="float32")) if b.spec.dtype == _UNKNOWN_DTYPE else b
                     for b in plan.outputs)
        return replace(plan, outputs=flat)
    return _planned_outputs(plan, model_outputs({name: value[:1] for name, value in prepared.feeds.items()}, plan, 1))


def is_image_field(field: StructField) -> bool:
    """An image struct column, or a binary column of encoded image files."""
    names = getattr(field.dataType, "names", None) or []
    return {"height", "width", "nChannels", "data"} <= set(names) or isinstance(field.dataType, BinaryType)


def is_image_column(df: DataFrame, column: str) -> bool:
    """An image struct column, or a binary column of encoded image files."""
    return is_image_field(df.schema[column])


__all__ = ["ModelTransformer", "is_image_column"]
