"""Training data: the DataFrame checked and narrowed on the driver, then read as NumPy on a rank.

The driver never sees a row: it selects the feature and label columns, turns ML vectors into
arrays, draws the validation flag with a seeded ``rand``, and computes the few numbers every rank
must agree on (row counts, label range) in one aggregation. Each rank turns its Arrow shard into
arrays (image columns decoded and resized to the model's input) and walks it in a seeded order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.shapes import format_shape, recorded_shape

FEATURES = "__deepframes_features"
LABEL = "__deepframes_label"
VALIDATION = "__deepframes_validation"


@dataclass(frozen=True)
class FeatureSpec:
    """How a rank turns the shard's feature column into the model's input batch."""

    kind: str  # "array", "struct" (read_images) or "files" (encoded images)
    input_shape: tuple[int, ...]  # the model's, batch dimension first (-1 when free)
    image_layout: str = "NHWC"


@dataclass(frozen=True)
class DataSummary:
    """What the driver learns about the training data before any rank starts."""

    num_train: int
    num_validation: int
    label_min: float
    label_max: float
    cell_size: int | None = None  # numbers per feature cell (array features), when all agree


def _vector_or_array(df, column: str):
    from pyspark.ml.functions import vector_to_array
    from pyspark.ml.linalg import VectorUDT
    from pyspark.sql import functions as F

    if isinstance(df.schema[column].dataType, VectorUDT):
        return vector_to_array(F.col(column), "float32")
    return F.col(column)


def feature_kind(df, column: str) -> str:
    from pyspark.sql.types import BinaryType

    data_type = df.schema[column].dataType
    names = set(getattr(data_type, "names", None) or [])
    if {"height", "width", "nChannels", "data"} <= names:
        return "struct"
    if isinstance(data_type, BinaryType):
        return "files"
    return "array"


def column_cell_shape(df, column: str) -> tuple[int, ...] | None:
    """One cell's shape from the recorded shape (``[?, 512]`` -> ``(512,)``), if recorded."""
    shape = recorded_shape(df.schema[column])
    return None if shape is None else tuple(int(size) for size in shape[1:])


def training_frame(df, features: str, label: str, validation_fraction: float, seed: int):
    """The columns a rank needs, nulls dropped, with a seeded validation flag."""
    from pyspark.sql import functions as F

    for name, role in ((features, "featuresCol"), (label, "labelCol")):
        if name not in df.columns:
            raise ValueError(
                f"The training DataFrame has no column {name!r} ({role}). Expected one of "
                f"{df.columns}; received {role}={name!r}. Set {role} to an existing column."
            )
    frame = df.select(
        _vector_or_array(df, features).alias(FEATURES), F.col(label).cast("double").alias(LABEL)
    ).dropna()
    flag = F.rand(seed) < F.lit(float(validation_fraction)) if validation_fraction > 0 else F.lit(False)
    return frame.withColumn(VALIDATION, flag)


def summarize(frame, kind: str = "array") -> DataSummary:
    """Row counts, label range and cell size in one Spark job (an aggregate, nothing collected)."""
    from pyspark.sql import functions as F

    size = F.size(F.flatten(F.col(FEATURES))) if _nesting(frame) > 1 else F.size(F.col(FEATURES))
    sizes = [F.min(size).alias("small"), F.max(size).alias("large")] if kind == "array" else []
    row = frame.agg(
        F.sum(F.when(~F.col(VALIDATION), 1).otherwise(0)).alias("train"),
        F.sum(F.when(F.col(VALIDATION), 1).otherwise(0)).alias("validation"),
        F.min(LABEL).alias("low"),
        F.max(LABEL).alias("high"),
        *sizes,
    ).first()
    if not row["train"]:
        raise ValueError(
            "The training DataFrame has no complete rows: expected at least one row with both the "
            "features and the label set; received none after dropping nulls. Check featuresCol, "
            "labelCol and any filter applied before fit."
        )
    cell_size = None
    if kind == "array" and row["small"] == row["large"]:
        cell_size = int(row["small"])
    return DataSummary(int(row["train"]), int(row["validation"] or 0), float(row["low"]), float(row["high"]),
                       cell_size)


def _nesting(frame) -> int:
    from ..core.shapes import element_type

    return element_type(frame.schema[FEATURES].dataType)[1]


def check_labels(summary: DataSummary, num_classes: int, stage: str) -> None:
    low, high = summary.label_min, summary.label_max
    if low < 0 or high >= num_classes or low != int(low) or high != int(high):
        raise ValueError(
            f"{stage}: labels range over [{low:g}, {high:g}], but the model's output layer has "
            f"{num_classes} classes: expected integer class indices in [0, {num_classes - 1}]. "
            "Index the labels (pyspark.ml.feature.StringIndexer) or widen the output layer."
        )


def check_feature_shape(df, column: str, kind: str, input_shape: tuple[int, ...], stage: str,
                        cell_size: int | None = None) -> None:
    """Fail before training when an array column's cells cannot feed the model."""
    if kind != "array":
        if len(input_shape) != 4 or 3 not in (input_shape[1], input_shape[-1]):
            raise ValueError(
                f"{stage}: featuresCol {column!r} holds images, so the model needs an image input "
                f"[?, H, W, 3] or [?, 3, H, W]; received a model input of shape "
                f"{format_shape(input_shape)}. Featurize the images first or change the model's input."
            )
        return
    cell = column_cell_shape(df, column) or ((cell_size,) if cell_size is not None else None)
    expected = tuple(input_shape[1:])
    if cell is None or any(size < 0 for size in expected):
        return  # cells of varying sizes, or a model taking any size: the rank checks its rows
    if int(np.prod(cell)) != int(np.prod(expected)):
        raise ValueError(
            f"{stage}: featuresCol {column!r} has cells of shape {format_shape([-1, *cell])}; the "
            f"model's input is {format_shape(input_shape)}. Pick the matching column, reshape it "
            "(append_shape) or change the model's input layer."
        )


def feature_batch(table, spec: FeatureSpec) -> np.ndarray:
    """The shard's feature column as one float32 array shaped for the model."""
    import pyarrow as pa

    column = table.column(FEATURES).combine_chunks()
    if spec.kind in ("struct", "files"):
        from ..models.presets import ImagePreset

        layout = "NCHW" if spec.input_shape[1] == 3 else "NHWC"
        size = spec.input_shape[2:4] if layout == "NCHW" else spec.input_shape[1:3]
        preset = ImagePreset((int(size[0]), int(size[1])), layout)
        if spec.kind == "struct":
            return preset.batch_from_structs(column)
        images, _ = preset.batch_from_files(column)
        return images
    values = column
    while pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
        values = values.flatten()
    flat = values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    cell = [size for size in spec.input_shape[1:]]
    if not cell or any(size < 0 for size in cell):
        return flat.reshape(len(column), -1)
    if flat.size != len(column) * int(np.prod(cell)):
        raise ValueError(
            f"The feature cells hold {flat.size // max(len(column), 1)} numbers each; the model's input "
            f"is {format_shape(spec.input_shape)}. Pick the matching featuresCol or change the model."
        )
    return flat.reshape(len(column), *cell)


@dataclass(frozen=True)
class RankData:
    """One rank's arrays: training and validation features and labels."""

    x: np.ndarray
    y: np.ndarray
    x_validation: np.ndarray
    y_validation: np.ndarray


def rank_data(table, spec: FeatureSpec) -> RankData:
    """Split an Arrow table (a rank's shard, or all the data) by the validation flag."""
    x = feature_batch(table, spec)
    y = table.column(LABEL).to_numpy().astype(np.int64)
    held = table.column(VALIDATION).to_numpy(zero_copy_only=False).astype(bool)
    return RankData(x[~held], y[~held], x[held], y[held])


def epoch_batches(num_rows: int, usable_rows: int, batch_size: int, epoch: int, seed: int, shuffle: bool):
    """Row indices of each batch of one epoch, in a seeded order.

    Every rank walks ``usable_rows`` rows (the smallest shard's size, agreed on by all ranks) so
    that all ranks take the same number of steps with batches of the same size; the rows left
    over on a larger shard change from epoch to epoch when shuffling.
    """
    order = np.random.default_rng([seed, epoch]).permutation(num_rows) if shuffle else np.arange(num_rows)
    order = order[:usable_rows]
    return [order[start:start + batch_size] for start in range(0, usable_rows, batch_size)]


def local_batch_size(batch_size: int, world_size: int, stage: str) -> int:
    """Rows per rank and step for a global ``batchSize``."""
    if batch_size < world_size or batch_size % world_size:
        raise ValueError(
            f"{stage}: batchSize is global and split evenly across the {world_size} slots; expected a "
            f"multiple of numSlots={world_size}, received batchSize={batch_size}. Use "
            f"batchSize={max(world_size, batch_size - batch_size % world_size)}."
        )
    return batch_size // world_size


__all__ = ["DataSummary", "FeatureSpec", "RankData", "epoch_batches", "feature_batch", "local_batch_size",
           "rank_data", "summarize", "training_frame"]
