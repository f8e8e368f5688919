"""deepframes: deep learning on Apache Spark DataFrames.

Importing deepframes is cheap: names are imported on first use, so ``import deepframes`` loads
neither PySpark's SQL layer nor TensorFlow, PyTorch or ONNX Runtime (a rank process of the
``Distributor`` or the command line's ``--help`` starts at once).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_attributes

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "JavaNotFoundError": "._java",
    "BlockFunctionError": ".blocks",
    "aggregate": ".blocks",
    "analyze": ".blocks",
    "append_shape": ".blocks",
    "map_blocks": ".blocks",
    "map_rows": ".blocks",
    "print_schema": ".blocks",
    "reduce_blocks": ".blocks",
    "reduce_rows": ".blocks",
    "register_block_udf": ".blocks",
    "register_row_udf": ".blocks",
    "Distributor": ".distributed",
    "read_images": ".images",
    "stream_images": ".images",
    "ImageFeaturizer": ".inference",
    "ImagePredictor": ".inference",
    "ModelTransformer": ".inference",
    "NoveltyDetector": ".inference",
    "TextEmbedder": ".inference",
    "register_udf": ".inference",
    "VectorIndex": ".similarity",
    "VectorIndexModel": ".similarity",
    "near_duplicates": ".similarity",
    "nearest_neighbors": ".similarity",
    "register_index": ".similarity",
    "KerasEstimator": ".training",
    "KerasModel": ".training",
    "TorchEstimator": ".training",
    "TorchModel": ".training",
    # from the module itself: once deepframes.training.tune (the module) is imported, as
    # unpickling a trial does, the package's attribute `tune` is that module, not the function
    "tune": ".training.tune",
}

# subpackages reachable as attributes after a plain `import deepframes` (deepframes.images.to_numpy)
_SUBPACKAGES = ("apps", "blocks", "compat", "core", "distributed", "engines", "images", "inference", "models",
                "similarity", "training")

__all__ = [
    "BlockFunctionError", "Distributor", "ImageFeaturizer", "ImagePredictor", "JavaNotFoundError",
    "ModelTransformer", "NoveltyDetector", "__version__", "aggregate", "analyze", "append_shape", "map_blocks", "map_rows",
    "print_schema", "read_images", "reduce_blocks", "reduce_rows", "register_block_udf", "register_row_udf",
    "register_udf", "session", "stream_images", "KerasEstimator", "KerasModel", "TorchEstimator", "TorchModel", "tune",
    "VectorIndex", "VectorIndexModel", "near_duplicates", "nearest_neighbors", "register_index", "TextEmbedder",
]

# Bound now, not on first use: the submodule of the same name would otherwise shadow the function.
from .session import session as session

if TYPE_CHECKING:
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
    from .blocks import register_block_udf as register_block_udf
    from .blocks import register_row_udf as register_row_udf
    from .distributed import Distributor as Distributor
    from .images import read_images as read_images
    from .images import stream_images as stream_images
    from .inference import ImageFeaturizer as ImageFeaturizer
    from .inference import ImagePredictor as ImagePredictor
    from .inference import ModelTransformer as ModelTransformer
    from .inference import NoveltyDetector as NoveltyDetector
    from .inference import TextEmbedder as TextEmbedder
    from .inference import register_udf as register_udf
    from .similarity import VectorIndex as VectorIndex
    from .similarity import VectorIndexModel as VectorIndexModel
    from .similarity import near_duplicates as near_duplicates
    from .similarity import nearest_neighbors as nearest_neighbors
    from .similarity import register_index as register_index
    from .training import KerasEstimator as KerasEstimator
    from .training import KerasModel as KerasModel
    from .training import TorchEstimator as TorchEstimator
    from .training import TorchModel as TorchModel
    from .training.tune import tune as tune


__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS, _SUBPACKAGES)
