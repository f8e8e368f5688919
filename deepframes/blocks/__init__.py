"""Tensor blocks over DataFrames: map and reduce columns with NumPy, TensorFlow or PyTorch
functions of ``{column: array}`` dictionaries (the successor of TensorFrames)."""

from __future__ import annotations

from .functions import BlockFunctionError as BlockFunctionError
from .mapping import map_blocks as map_blocks
from .mapping import map_rows as map_rows
from .reducing import aggregate as aggregate
from .reducing import reduce_blocks as reduce_blocks
from .reducing import reduce_rows as reduce_rows
from .shapes import analyze as analyze
from .shapes import append_shape as append_shape
from .shapes import print_schema as print_schema
from .sql import register_block_udf as register_block_udf
from .sql import register_row_udf as register_row_udf

__all__ = [
    "BlockFunctionError",
    "aggregate",
    "analyze",
    "append_shape",
    "map_blocks",
    "map_rows",
    "print_schema",
    "reduce_blocks",
    "reduce_rows",
    "register_block_udf",
    "register_row_udf",
]
