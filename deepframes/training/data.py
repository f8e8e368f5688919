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
INDEX = "__deepframes_index"  # a row's place among the training (or the validation) rows
RANK = "__deepframes_rank"  # the slot a row trains on
_POSITION = "__deepframes_position"


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
    # rows of each partition of the training frame: (training, validation), by partition index
    partition_rows: tuple[tuple[int, int], ...] = ()


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
    """Row counts (per partition too), label range and cell size in one Spark job: an aggregate
    with a row per partition and split, nothing of the rows collected."""
    from pyspark.sql import functions as F

    size = F.size(F.flatten(F.col(FEATURES))) if _nesting(frame) > 1 else F.size(F.col(FEATURES))
    sizes = [F.min(size).alias("small"), F.max(size).alias("large")] if kind == "array" else []
    groups = frame.groupBy(F.spark_partition_id().alias("partition"), F.col(VALIDATION).alias("held")).agg(
        F.count(F.lit(1)).alias("rows"), F.min(LABEL).alias("low"), F.max(LABEL).alias("high"), *sizes,
    ).collect()
    num_partitions = max((group["partition"] for group in groups), default=-1) + 1
    counts = [[0, 0] for _ in range(num_partitions)]
    for group in groups:
        counts[group["partition"]][1 if group["held"] else 0] = int(group["rows"])
    num_train = sum(train for train, _ in counts)
    if not num_train:
        raise ValueError(
            "The training DataFrame has no complete rows: expected at least one row with both the "
            "features and the label set; received none after dropping nulls. Check featuresCol, "
            "labelCol and any filter applied before fit."
        )
    cell_size = None
    if kind == "array" and len({group["small"] for group in groups} | {group["large"] for group in groups}) == 1:
        cell_size = int(groups[0]["small"])
    return DataSummary(num_train, sum(held for _, held in counts), min(float(group["low"]) for group in groups),
                       max(float(group["high"]) for group in groups), cell_size,
                       tuple((train, held) for train, held in counts))


def indexed_frame(frame, summary: DataSummary):
    """``frame`` with ``INDEX``: each training row's place among the training rows (0, 1, ...),
    and each validation row's among the validation rows, in the order of the frame's partitions
    and of the rows within them (the order ``numSlots=1`` trains in when not shuffling).

    ``monotonically_increasing_id`` numbers a partition's rows from ``partition << 33``; the
    partitions' row counts from :func:`summarize` turn it into a dense index without a shuffle.
    """
    from pyspark.sql import functions as F

    def numbered(rows, counts: list[int]):
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int) if counts else np.zeros(0, int)
        starts = F.array(*[F.lit(int(offset)) for offset in offsets]) if len(offsets) else F.array(F.lit(0))
        partition = F.shiftright(F.col(_POSITION), 33)
        start = F.element_at(starts, (partition + 1).cast("int")).cast("long")
        within = F.col(_POSITION) - F.shiftleft(partition, 33)
        return (rows.withColumn(_POSITION, F.monotonically_increasing_id())
                .withColumn(INDEX, start + within).drop(_POSITION))

    train = numbered(frame.where(~F.col(VALIDATION)), [train for train, _ in summary.partition_rows])
    if not summary.num_validation:
        return train
    held = numbered(frame.where(F.col(VALIDATION)), [held for _, held in summary.partition_rows])
    return train.unionByName(held)


def with_ranks(frame, num_train: int, batch_size: int, world_size: int):
    """``frame`` (from :func:`indexed_frame`) with ``RANK``: slot r trains on the r-th part of
    each global batch, so that ``numSlots=N`` takes the same global batches as ``numSlots=1``.

    Global batch k holds the training rows with index ``k * batchSize`` to
    ``(k + 1) * batchSize - 1``; each slot takes ``batchSize / numSlots`` consecutive rows of
    it. A last, partial batch is split in equal parts too (the ``size mod numSlots`` rows over
    go one to a slot, and are left out of training by the slots' equal step counts). Validation
    rows are dealt round-robin.
    """
    from pyspark.sql import functions as F

    def floor_div(numerator, denominator: int):
        return F.floor(numerator / F.lit(denominator)).cast("long")

    index = F.col(INDEX)
    part = batch_size // world_size
    full = num_train // batch_size * batch_size
    last_part = (num_train - full) // world_size
    after = index - F.lit(full)
    in_last = floor_div(after, last_part) if last_part else F.lit(world_size)
    train_rank = (F.when(index < F.lit(full), floor_div(index % F.lit(batch_size), part))
                  .when(in_last < F.lit(world_size), in_last)
                  .otherwise(after - F.lit(last_part * world_size)))
    rank = F.when(F.col(VALIDATION), index % F.lit(world_size)).otherwise(train_rank)
    return frame.withColumn(RANK, rank.cast("int"))


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
    """Split an Arrow table (a rank's shard, or all the data) by the validation flag, each part
    in ``INDEX`` order (the global batches' order)."""
    if INDEX in table.column_names:
        table = table.sort_by(INDEX)
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


__all__ = ["DataSummary", "FeatureSpec", "RankData", "epoch_batches", "feature_batch", "indexed_frame",
           "local_batch_size", "rank_data", "summarize", "training_frame", "with_ranks"]
