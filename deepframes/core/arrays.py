"""Arrow columns <-> NumPy blocks, and NumPy dtypes <-> Spark types, for every executor operation.

A block is a dict ``{column: numpy array}`` whose first dimension is the row count. Array and
vector cells become extra dimensions; the shape recorded on a column turns flat cells back into
their N-D shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    ByteType,
    DataType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    ShortType,
    StringType,
)

from .shapes import UNKNOWN, format_shape
from .udf import OutputColumn

# NumPy dtype -> (Spark type, NumPy dtype it is stored as). Unsigned ints widen to fit.
_SPARK_TYPES: dict[str, tuple[DataType, str]] = {
    "float64": (DoubleType(), "float64"),
    "float32": (FloatType(), "float32"),
    "float16": (FloatType(), "float32"),
    "int64": (LongType(), "int64"),
    "int32": (IntegerType(), "int32"),
    "int16": (ShortType(), "int16"),
    "int8": (ByteType(), "int8"),
    "uint32": (LongType(), "int64"),
    "uint16": (IntegerType(), "int32"),
    "uint8": (ShortType(), "int16"),
    "bool": (BooleanType(), "bool"),
    "str": (StringType(), "object"),
    "bytes": (BinaryType(), "object"),
}
_NUMPY_DTYPES = {type(spark): stored for spark, stored in _SPARK_TYPES.values()}


BLOCK_FIX = ("A block function must return the same dtype and cell shape for every block (cast its result, "
             "or declare the column with output_schema).")


class UnequalCellsError(ValueError):
    """Cells of one column differ in shape within a block."""


def as_numpy(value: object) -> np.ndarray:
    """A NumPy array from a NumPy value, list, TensorFlow or PyTorch tensor (no framework import)."""
    module = type(value).__module__
    if module.startswith("torch"):
        value = value.detach().cpu().numpy()  # type: ignore[attr-defined]
    elif module.startswith(("tensorflow", "keras")) and hasattr(value, "numpy"):
        value = value.numpy()  # type: ignore[attr-defined]
    return np.asarray(value)


def _dtype_key(values: np.ndarray) -> str:
    if values.dtype.kind in "US":
        return "str" if values.dtype.kind == "U" else "bytes"
    if values.dtype == object:
        sample = next((item for item in values.flat if item is not None), "")
        return "bytes" if isinstance(sample, (bytes, bytearray)) else "str"
    return values.dtype.name


@dataclass(frozen=True)
class OutputSpec:
    """One output column: its name, stored NumPy dtype, Spark type and cell shape."""

    name: str
    dtype: str
    spark_type: DataType
    cell_shape: tuple[int, ...]  # () for scalars; UNKNOWN where sizes may vary

    @property
    def block_shape(self) -> list[int]:
        return [UNKNOWN, *self.cell_shape]

    def column(self) -> OutputColumn:
        """The column this output appends, with its block shape recorded when cells are arrays."""
        return OutputColumn(self.name, self.spark_type, tuple(self.block_shape) if self.cell_shape else None)

    @classmethod
    def infer(cls, name: str, values: np.ndarray, variable: bool = False) -> OutputSpec:
        """The spec of an output column from one block of its values (rows first)."""
        key = _dtype_key(values)
        if key not in _SPARK_TYPES:
            raise TypeError(
                f"Output {name!r} has dtype {values.dtype}, which has no Spark column type. "
                f"Supported: {sorted(_SPARK_TYPES)}; cast it (e.g. `.astype('float64')`)."
            )
        element, stored = _SPARK_TYPES[key]
        cell_shape = tuple(UNKNOWN if variable else size for size in values.shape[1:])
        spark_type = ArrayType(element) if cell_shape else element
        return cls(name, stored if key not in ("str", "bytes") else key, spark_type, cell_shape)

    @classmethod
    def declared(cls, name: str, spark_type: DataType, shape: Sequence[int] | None) -> OutputSpec:
        """The spec of an output column the user declared with ``output_schema``."""
        element, depth = spark_type, 0
        while isinstance(element, ArrayType):
            element, depth = element.elementType, depth + 1
        if depth > 1 or type(element) not in _NUMPY_DTYPES:
            raise TypeError(
                f"Output {name!r} is declared as {spark_type.simpleString()}; expected a numeric, "
                "boolean, string or binary type, or a flat array of one (N-D cells are stored flat "
                "with their shape recorded)."
            )
        dtype = {StringType: "str", BinaryType: "bytes"}.get(type(element), _NUMPY_DTYPES[type(element)])
        cell_shape = tuple(shape[1:]) if shape else ((UNKNOWN,) if depth else ())
        return cls(name, dtype, spark_type, cell_shape)

    def check(self, values: np.ndarray, declared: bool, fix: str = BLOCK_FIX) -> np.ndarray:
        """``values`` in this column's dtype; a clear error if its dtype or cell shape changed.

        Declared columns accept any same-kind dtype (float64 into a float column); inferred ones
        must keep the dtype the first block had. ``fix`` ends the error message.
        """
        try:
            return self._checked(values, declared)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{error} {fix}") from None

    def _checked(self, values: np.ndarray, declared: bool) -> np.ndarray:
        values = self._checked_dtype(values, declared)
        cells, expected = values.shape[1:], self.cell_shape
        flattened_ok = declared and expected == (UNKNOWN,)  # any N-D cells stored flat
        same_rank = len(cells) == len(expected)
        if not flattened_ok and (not same_rank or any(e not in (UNKNOWN, c) for c, e in zip(cells, expected))):
            raise ValueError(self._changed("cell shape", format_shape(cells), format_shape(expected)))
        return values

    def _checked_dtype(self, values: np.ndarray, declared: bool) -> np.ndarray:
        key = _dtype_key(values)
        if "str" in (key, self.dtype) or "bytes" in (key, self.dtype):
            if key != self.dtype:
                raise TypeError(self._changed("dtype", key, self.dtype))
            return values
        if declared:
            castable = np.can_cast(values.dtype, self.dtype, casting="same_kind")
        else:
            castable = _SPARK_TYPES.get(key, (None, None))[1] == self.dtype
        if not castable:
            raise TypeError(self._changed("dtype", values.dtype.name, self.dtype))
        return values.astype(self.dtype, copy=False)

    def _changed(self, what: str, received: object, expected: object) -> str:
        return (
            f"Output {self.name!r} changed {what} between blocks: expected {expected}, "
            f"received {received}."
        )


# ---- Arrow -> NumPy ------------------------------------------------------------------------


def valid_rows(arrays: Sequence[pa.Array]) -> np.ndarray | None:
    """Mask of rows with no null in any column, or None when every row is complete."""
    if not any(array.null_count for array in arrays):
        return None
    mask = np.ones(len(arrays[0]), dtype=bool)
    for array in arrays:
        if array.null_count:
            mask &= ~np.asarray(array.is_null())
    return mask


def _is_vector(array_type: pa.DataType) -> bool:
    return pa.types.is_struct(array_type) and {f.name for f in array_type} >= {"type", "size", "values"}


def _vectors_to_numpy(array: pa.Array, column: str) -> np.ndarray:
    """Spark ML vectors (dense or sparse) to a 2-D float64 array."""
    values = array.field("values")
    if pc.all(pc.equal(array.field("type"), 1)).as_py() is not False:
        return lists_to_numpy(values, column)
    rows = []
    for item in array.to_pylist():
        if item["type"] == 1:
            rows.append(np.asarray(item["values"], dtype=np.float64))
        else:
            dense = np.zeros(item["size"], dtype=np.float64)
            dense[item["indices"]] = item["values"]
            rows.append(dense)
    return _stack_cells(rows, column)


def _stack_cells(cells: list[np.ndarray], column: str) -> np.ndarray:
    shapes = {cell.shape for cell in cells}
    if len(shapes) > 1:
        first, other = sorted(shapes)[:2]
        raise UnequalCellsError(_unequal_message(column, first, other))
    return np.stack(cells) if cells else np.empty((0,))


def _unequal_message(column: str, first: object, other: object) -> str:
    return (
        f"Column {column!r} has cells of different shapes in one block ({first} and {other}); "
        "map_blocks and reduce_blocks need one cell shape per column. Use map_rows (or "
        "reduce_rows) for cells whose shapes differ from row to row."
    )


def lists_to_numpy(array: pa.Array, column: str) -> np.ndarray:
    """(Nested) list cells of equal lengths to one N-D array, rows first."""
    num_rows, dims, current = len(array), [], array
    while pa.types.is_list(current.type) or pa.types.is_large_list(current.type):
        lengths = np.asarray(pc.list_value_length(current).fill_null(0))
        if lengths.size and (lengths != lengths[0]).any():
            raise UnequalCellsError(_unequal_message(column, int(lengths.min()), int(lengths.max())))
        dims.append(int(lengths[0]) if lengths.size else 0)
        current = current.flatten()
    if current.null_count:
        raise ValueError(
            f"Column {column!r} has null elements inside its array cells; block functions need "
            "complete cells. Fill them first, e.g. F.transform(col, lambda v: F.coalesce(v, F.lit(0)))."
        )
    return np.asarray(current.to_numpy(zero_copy_only=False)).reshape(num_rows, *dims)


def apply_shape(values: np.ndarray, column: str, shape: Sequence[int] | None) -> np.ndarray:
    """Reshape flat cells to the column's recorded block shape, checking that they fit."""
    if not shape or len(shape) <= 1 or list(values.shape[1:]) == list(shape[1:]):
        return values
    cell = [(-1 if size == UNKNOWN else size) for size in shape[1:]]
    try:
        if cell.count(-1) > 1:
            raise ValueError
        return values.reshape(values.shape[0], *cell)
    except ValueError:
        raise ValueError(
            f"Column {column!r} is recorded with shape {format_shape(shape)} but its cells have "
            f"shape {list(values.shape[1:])}. Fix the recorded shape with append_shape(df, "
            f"{column!r}, ...) or analyze(df)."
        ) from None


def column_to_numpy(array: pa.Array, column: str, shape: Sequence[int] | None = None) -> np.ndarray:
    """One complete (null-free) Arrow column to a NumPy block."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    array_type = array.type
    if pa.types.is_list(array_type) or pa.types.is_large_list(array_type):
        values = lists_to_numpy(array, column)
    elif _is_vector(array_type):
        values = _vectors_to_numpy(array, column)
    elif pa.types.is_string(array_type) or pa.types.is_large_string(array_type) or pa.types.is_binary(array_type):
        values = np.asarray(array.to_numpy(zero_copy_only=False), dtype=object)
    elif pa.types.is_integer(array_type) or pa.types.is_floating(array_type) or pa.types.is_boolean(array_type):
        values = array.to_numpy(zero_copy_only=False)
    else:
        raise TypeError(
            f"Column {column!r} has type {array_type}, which block functions cannot read. "
            "Supported: numbers, booleans, strings, binary, (nested) arrays of them and ML vectors; "
            "cast or drop the column (columns=[...])."
        )
    return apply_shape(values, column, shape)


def cell_to_numpy(array: pa.Array, index: int, column: str, shape: Sequence[int] | None) -> object:
    """One cell as a NumPy value: a scalar, or an array of the cell's own shape."""
    cell = array[index]
    if _is_vector(array.type):
        item = cell.as_py()
        if item["type"] == 1:
            return np.asarray(item["values"], dtype=np.float64)
        dense = np.zeros(item["size"], dtype=np.float64)
        dense[item["indices"]] = item["values"]
        return dense
    if pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
        values = np.asarray(cell.as_py())
        known = shape and len(shape) > 1 and UNKNOWN not in shape[1:]
        return values.reshape(shape[1:]) if known and values.ndim == 1 else values
    value = cell.as_py()
    return value if isinstance(value, (str, bytes)) else np.asarray(value)[()]


# ---- NumPy -> Arrow ------------------------------------------------------------------------


def arrow_type(spark_type: DataType) -> pa.DataType:
    """The Arrow type Spark exchanges for a Spark column type."""
    if isinstance(spark_type, ArrayType):
        return pa.list_(arrow_type(spark_type.elementType))
    return {
        DoubleType: pa.float64(), FloatType: pa.float32(), LongType: pa.int64(),
        IntegerType: pa.int32(), ShortType: pa.int16(), ByteType: pa.int8(),
        BooleanType: pa.bool_(), StringType: pa.string(), BinaryType: pa.binary(),
    }[type(spark_type)]


def block_to_arrow(values: np.ndarray, spec: OutputSpec) -> pa.Array:
    """A block of output values (rows first) as the Arrow array of its Spark column."""
    target = arrow_type(spec.spark_type)
    if not isinstance(spec.spark_type, ArrayType):
        return pa.array(values, type=target)
    rows = values.shape[0]
    flat = values.reshape(rows, -1) if values.ndim > 1 else values
    if flat.dtype == object:  # ragged cells from map_rows
        return pa.array([np.asarray(cell).ravel() for cell in flat], type=target)
    width = flat.shape[1] if flat.ndim > 1 else 0
    offsets = np.arange(0, rows * width + 1, max(width, 1), dtype=np.int32)[: rows + 1]
    if width == 0:
        offsets = np.zeros(rows + 1, dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat.ravel(), type=target.value_type))


def cells_to_arrow(cells: list, spec: OutputSpec) -> pa.Array:
    """Row-by-row output cells (possibly of varying lengths) as an Arrow array."""
    target = arrow_type(spec.spark_type)
    if isinstance(spec.spark_type, ArrayType):
        return pa.array([np.asarray(cell).ravel() for cell in cells], type=target)
    return pa.array([cell.item() if isinstance(cell, np.generic) else cell for cell in cells], type=target)


def scatter_rows(array: pa.Array, valid: np.ndarray | None) -> pa.Array:
    """Put outputs of the complete rows back in place, with nulls for rows that had a null input."""
    if valid is None:
        return array
    positions = np.cumsum(valid) - 1
    indices = pa.array(np.where(valid, positions, 0), mask=~valid)
    return array.take(indices)


def block_from_arrays(
    arrays: Mapping[str, pa.Array], shapes: Mapping[str, Sequence[int] | None]
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """The NumPy block of the rows with no null, and the mask of those rows (None: all rows)."""
    valid = valid_rows(list(arrays.values()))
    if valid is not None:
        keep = pa.array(valid)
        arrays = {name: array.filter(keep) for name, array in arrays.items()}
    block = {name: column_to_numpy(array, name, shapes.get(name)) for name, array in arrays.items()}
    return block, valid
