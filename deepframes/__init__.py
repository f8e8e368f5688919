"""deepframes: deep learning on Apache Spark DataFrames.

Importing deepframes is cheap: it never imports TensorFlow, PyTorch or ONNX Runtime.
"""

from __future__ import annotations

from ._java import JavaNotFoundError as JavaNotFoundError
from .blocks import BlockFunctionError as BlockFunctionError
from .blocks import aggregate as aggregate
from .blocks import analyze as analyze
from .blocks import append_shape as append_shape
from .blocks import map_blocks as map_blocks
from .blocks import map_rows as map_rows
from .blocks import print_schema as print_schema
from .blocks import reduce_blocks as reduce_blocks
from .blocks import reduce_rows as reduce_rows
from .distributed import Distributor as Distributor
from .images import read_images as read_images
from .inference import ImageFeaturizer as ImageFeaturizer
from .inference import ImagePredictor as ImagePredictor
from .inference import ModelTransformer as ModelTransformer
from .inference import register_udf as register_udf
from .session import session as session

__version__ = "0.1.0"

__all__ = [
    "BlockFunctionError",
    "Distributor",
    "ImageFeaturizer",
    "ImagePredictor",
    "JavaNotFoundError",
    "ModelTransformer",
    "__version__",
    "aggregate",
    "analyze",
    "append_shape",
    "map_blocks",
    "map_rows",
    "print_schema",
    "read_images",
    "reduce_blocks",
    "reduce_rows",
    "register_udf",
    "session",
]
