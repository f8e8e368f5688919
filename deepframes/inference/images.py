"""``ImageFeaturizer`` and ``ImagePredictor``: named networks over the image column."""

from __future__ import annotations

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasInputCol, HasOutputCol
from pyspark.sql import DataFrame
from pyspark.sql.types import ArrayType, FloatType

from ..core.arrays import OutputSpec
from ..core.params import NONE, STRING, Constraint, integer, one_of
from ..core.persistence import ModelFileStage
from ..core.shapes import UNKNOWN
from ..models import zoo
from .runner import InferencePlan, InputBinding, OutputBinding, TopK
from .stage import HasBatchSize, HasErrors, apply_plan, as_vectors, check_input_columns
from .transformer import is_image_column


class _NamedImageModel(Transformer, HasInputCol, HasOutputCol, HasBatchSize, HasErrors, ModelFileStage):
    model = Param(Params._dummy(), "model", "named model: " + ", ".join(sorted(zoo.NAMED_MODELS)),
                  typeConverter=TypeConverters.toString)
    weights = Param(Params._dummy(), "weights", "'imagenet', a local weights/ONNX file, or None for random",
                    typeConverter=TypeConverters.identity)

    file_params = ("weights",)
    _parameter_constraints = {
        "model": one_of(*zoo.NAMED_MODELS, hint="For a model file of your own, use ModelTransformer."),
        "weights": (STRING, NONE),
    }

    def _named(self) -> zoo.NamedModel:
        return zoo.named_model(self.getOrDefault(self.model))

    def _weights(self) -> str | None:
        return self.getOrDefault(self.weights) if self.isDefined(self.weights) else None

    def _check(self, dataset: DataFrame) -> None:
        column = self.getInputCol()
        stage = type(self).__name__
        check_input_columns(dataset, [column], stage)
        if not is_image_column(dataset, column):
            raise TypeError(
                f"{stage}: column {column!r} must be an image struct (read_images gives one) or encoded "
                f"image files (read_images(decode=False) gives 'content'); it is "
                f"{dataset.schema[column].dataType.simpleString()}."
            )

    # The stage lays images out in exactly the shape its network takes and writes flat float32
    # arrays, so planning needs neither the model nor the data: transform loads nothing.
    def _plan(self, spec, output_name: str | None, top_k: TopK | None = None) -> InferencePlan:
        binding = InputBinding(self.getInputCol(), "image", None, self._named().preset)
        output = OutputBinding(output_name, OutputSpec(self.getOutputCol(), "float32", ArrayType(FloatType()), (UNKNOWN,)))
        return InferencePlan(spec, (binding,), (output,), self.getBatchSize(), top_k=top_k)

    def inference_plan(self) -> InferencePlan:
        """What the stage runs on each batch (also what ``register_udf`` and the pipeline
        interpreter run); planning only."""
        raise NotImplementedError


class ImageFeaturizer(_NamedImageModel):
    """Image features from a named network, as an ML ``Vector`` column ready for MLlib.

    Parameters
    ----------
    inputCol : str
        An image struct column (``read_images``), or a binary column of encoded image files
        (``read_images(..., decode=False)``'s ``content``, decoded inside the model's batches:
        the fastest path; files that cannot be decoded give null features and their reason in
        ``error``). Any image size, resized inside.
    outputCol : str
    model : str
        ``squeezenet1.1`` (ONNX, ``weights`` = its file) or a Keras application: ``VGG16``,
        ``VGG19``, ``ResNet50``, ``InceptionV3``, ``Xception``, ``MobileNetV2``, ``EfficientNetB0``.
    weights : str or None
        ``"imagenet"`` (Keras downloads and caches them), a local file, or None (random, seeded).
    pooling : {"avg", "max", None}
        Global pooling of the last feature map; None keeps it whole (flattened).
    batchSize : int
    errors : {"column", "raise"}
        A row that fails (a file that does not decode, or a model batch that raises, run again
        one row at a time to find the row): null features and the reason in the ``error``
        column, added or filled where ``read_images``' own is null (default); ``"raise"``: a
        model error fails the job.

    Examples
    --------
    >>> import deepframes
    >>> spark = deepframes.session("local[2]")
    >>> images = deepframes.read_images("../shared/data/pets/images/Bengal_1*.jpg")
    >>> featurizer = deepframes.ImageFeaturizer(model="squeezenet1.1",
    ...     weights="../shared/models/squeezenet1.1.onnx")
    >>> featurizer.transform(images).first().features.size
    512
    """

    pooling = Param(Params._dummy(), "pooling", "avg, max or None", typeConverter=TypeConverters.identity)
    _parameter_constraints = {"pooling": one_of(*zoo.POOLINGS)}

    @keyword_only
    def __init__(self, *, inputCol="image", outputCol="features", model="squeezenet1.1", weights=None,
                 pooling="avg", batchSize=64, errors="column"):
        super().__init__()
        self._setDefault(inputCol="image", outputCol="features", model="squeezenet1.1", pooling="avg", batchSize=64)
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, inputCol="image", outputCol="features", model="squeezenet1.1", weights=None,
                  pooling="avg", batchSize=64, errors="column"):
        return self._set(**self._input_kwargs)

    def inference_plan(self) -> InferencePlan:
        named = self._named()
        spec = zoo.model_spec(named.name, self._weights(), include_top=False, pooling=self.getOrDefault(self.pooling))
        return self._plan(spec, named.feature_output)

    def _transform(self, dataset: DataFrame) -> DataFrame:
        self._check(dataset)
        plan = self.inference_plan()
        features = apply_plan(dataset, plan.shipped(dataset.sparkSession), "ImageFeaturizer", self.getErrors())
        return as_vectors(features, self.getOutputCol())


class ImagePredictor(_NamedImageModel):
    """The ``topK`` most probable classes per image: ``array<struct<label, probability>>``.

    ``labels`` is a list of class names or a file (``index,label`` lines, as
    ``shared/models/imagenet_labels.txt``); by default ImageNet's, found beside SqueezeNet's ONNX
    file or through Keras.

    Examples
    --------
    >>> import deepframes
    >>> spark = deepframes.session("local[2]")
    >>> images = deepframes.read_images("../shared/data/pets/images/Bengal_10.jpg")
    >>> predictor = deepframes.ImagePredictor(model="squeezenet1.1",
    ...     weights="../shared/models/squeezenet1.1.onnx", topK=3)
    >>> len(predictor.transform(images).first().predictions)
    3
    """

    topK = Param(Params._dummy(), "topK", "how many classes to keep per image", typeConverter=TypeConverters.toInt)
    labels = Param(Params._dummy(), "labels", "class names, or a file of them", typeConverter=TypeConverters.identity)

    file_params = ("weights", "labels")
    _parameter_constraints = {
        "topK": integer(1),
        "labels": (Constraint("a list of class names", lambda value: isinstance(value, (list, tuple)) and bool(value)),
                   STRING, NONE),
    }

    @keyword_only
    def __init__(self, *, inputCol="image", outputCol="predictions", model="squeezenet1.1", weights=None,
                 topK=5, labels=None, batchSize=64, errors="column"):
        super().__init__()
        self._setDefault(inputCol="image", outputCol="predictions", model="squeezenet1.1", topK=5, batchSize=64)
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, inputCol="image", outputCol="predictions", model="squeezenet1.1", weights=None,
                  topK=5, labels=None, batchSize=64, errors="column"):
        return self._set(**self._input_kwargs)

    def write(self):
        """Saves the class labels too, so the loaded stage needs no label file beside its weights."""
        stage = self.copy()
        if not self.isDefined(self.labels):
            stage._set(labels=self._labels())
        return super(ImagePredictor, stage).write()

    def _labels(self) -> list[str]:
        labels = self.getOrDefault(self.labels) if self.isDefined(self.labels) else None
        if isinstance(labels, str):
            return zoo.read_labels(labels)
        if labels:
            return [str(label) for label in labels]
        found = zoo.default_labels(self.getOrDefault(self.model), self._weights())
        if not found:
            raise ValueError(
                "ImagePredictor needs class labels: labels=[...] or labels='imagenet_labels.txt' "
                "(no ImageNet label file was found beside the weights, and Keras could not fetch one)."
            )
        return found

    def inference_plan(self) -> InferencePlan:
        top_k = self.getOrDefault(self.topK)
        named = self._named()
        spec = zoo.model_spec(named.name, self._weights(), include_top=True, pooling=None)
        return self._plan(spec, named.probability_output, TopK(top_k, tuple(self._labels())))

    def _transform(self, dataset: DataFrame) -> DataFrame:
        self._check(dataset)
        plan = self.inference_plan()
        return apply_plan(dataset, plan.shipped(dataset.sparkSession), "ImagePredictor", self.getErrors())


__all__ = ["ImageFeaturizer", "ImagePredictor"]
