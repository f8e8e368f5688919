"""A rank's slice of a DataFrame: written by its barrier task on the executor, read by ``fn``.

The DataFrame is repartitioned round-robin into one partition per rank and the barrier stage runs
on those partitions, so each rank's rows go from the executor that holds them to a local Arrow
file; nothing is collected to the driver.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

_SHARD_NAME_HINT = "distributor.run(fn, df)"


@dataclass
class DataFrameShard:
    """One rank's rows of a DataFrame given to ``Distributor.run``, as NumPy, tf.data or torch.

    Array columns (``array<float>`` of a fixed length) become 2-D arrays; scalar columns 1-D.
    Vector columns (pyspark.ml) must first become arrays: ``pyspark.ml.functions.vector_to_array``.

    Examples
    --------
    >>> import pyarrow as pa, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "shard.arrow")
    >>> write_shard([pa.record_batch({"x": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], "y": [0, 1, 0]})], path)
    3
    >>> shard = DataFrameShard(columns=("x", "y"))._bind(path, 3, rank=0)
    >>> [batch["x"].shape for batch in shard.batches(2)]
    [(2, 2), (1, 2)]
    """

    columns: tuple[str, ...]
    path: str | None = None
    num_rows: int = 0
    rank: int = -1

    def _bind(self, path: str, num_rows: int, rank: int) -> DataFrameShard:
        self.path, self.num_rows, self.rank = path, num_rows, rank
        return self

    def require_bound(self) -> DataFrameShard:
        if self.path is None:
            raise RuntimeError(
                "This DataFrameShard has no rows attached: it is only usable inside fn on a rank "
                f"(pass the DataFrame to the run: {_SHARD_NAME_HINT})."
            )
        return self

    def to_arrow(self) -> Any:
        """The shard as a ``pyarrow.Table`` (memory-mapped from the executor's local file)."""
        import pyarrow as pa

        self.require_bound()
        with pa.memory_map(self.path) as source:
            return pa.ipc.open_file(source).read_all()

    def to_pandas(self) -> Any:
        """The shard as a pandas DataFrame."""
        return self.to_arrow().to_pandas()

    def to_numpy(self, columns: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """The whole shard as ``{column: array}``; array columns become 2-D."""
        table = self.to_arrow()
        names = list(columns) if columns is not None else list(table.column_names)
        return {name: _column_to_numpy(table.column(name)) for name in names}

    def batches(
        self, batch_size: int, columns: Iterable[str] | None = None
    ) -> Iterator[dict[str, np.ndarray]]:
        """Consecutive ``{column: array}`` batches of ``batch_size`` rows (the last may be smaller)."""
        if batch_size < 1:
            raise ValueError(
                f"batch_size must be a positive integer. Received: batch_size={batch_size}"
            )
        arrays = self.to_numpy(columns)
        for start in range(0, self.num_rows, batch_size):
            yield {
                name: values[start : start + batch_size]
                for name, values in arrays.items()
            }

    def as_tf_dataset(
        self, features: str | list[str], label: str | None = None, batch_size: int = 32
    ) -> Any:
        """A batched ``tf.data.Dataset`` of ``features`` (or ``(features, label)``) from this shard."""
        import tensorflow as tf

        tensors = self._feature_tensors(features, label)
        return tf.data.Dataset.from_tensor_slices(tensors).batch(batch_size)

    def as_torch_loader(
        self,
        features: str | list[str],
        label: str | None = None,
        batch_size: int = 32,
        shuffle: bool = False,
    ) -> Any:
        """A ``torch.utils.data.DataLoader`` over this shard's ``features`` (and ``label``)."""
        import torch
        from torch.utils.data import DataLoader, TensorDataset

        tensors = self._feature_tensors(features, label)
        parts = tensors if isinstance(tensors, tuple) else (tensors,)
        dataset = TensorDataset(
            *(
                torch.from_numpy(np.require(part, requirements=["C", "W"]))
                for part in parts
            )
        )
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle)

    def _feature_tensors(self, features: str | list[str], label: str | None) -> Any:
        names = [features] if isinstance(features, str) else list(features)
        arrays = self.to_numpy(names + ([label] if label else []))
        columns = [arrays[name] for name in names]
        stacked = columns[0] if len(columns) == 1 else np.column_stack(columns)
        return (stacked, arrays[label]) if label else stacked


def _column_to_numpy(column: Any) -> np.ndarray:
    import pyarrow as pa

    chunked = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_list(chunked.type) or pa.types.is_large_list(chunked.type):
        lengths = set(chunked.value_lengths().to_pylist()) if len(chunked) else {0}
        if len(lengths) != 1 or chunked.null_count:
            raise ValueError(
                "A shard's array column must hold arrays of one length and no nulls to become a 2-D "
                f"array. Received lengths {sorted(lengths)[:5]} and {chunked.null_count} nulls. "
                "Pad, filter or split the column before passing the DataFrame."
            )
        flat = chunked.flatten().to_numpy(zero_copy_only=False)
        return flat.reshape(len(chunked), lengths.pop())
    return chunked.to_numpy(zero_copy_only=False)


def write_shard(batches: Iterable[Any], path: str) -> int:
    """Write a rank's Arrow record batches to an Arrow IPC file; returns the number of rows."""
    import pyarrow as pa

    num_rows = 0
    writer = None
    try:
        for batch in batches:
            if writer is None:
                writer = pa.ipc.new_file(path, batch.schema)
            writer.write_batch(batch)
            num_rows += batch.num_rows
    finally:
        if writer is not None:
            writer.close()
    return num_rows


def _spark_int_hash(value: int, seed: int = 42) -> int:
    """Spark's ``hash()`` of an int (Murmur3 x86 32-bit, ``Murmur3_x86_32.hashInt``), signed."""
    mask = 0xFFFFFFFF

    def rotate(x: int, bits: int) -> int:
        return ((x << bits) | (x >> (32 - bits))) & mask

    k1 = rotate((value & mask) * 0xCC9E2D51 & mask, 15) * 0x1B873593 & mask
    h1 = (rotate(seed ^ k1, 13) * 5 + 0xE6546B64) & mask
    h1 ^= 4
    h1 ^= h1 >> 16
    h1 = h1 * 0x85EBCA6B & mask
    h1 ^= h1 >> 13
    h1 = h1 * 0xC2B2AE35 & mask
    h1 ^= h1 >> 16
    return h1 - (1 << 32) if h1 >= 1 << 31 else h1


def partition_keys(num_partitions: int) -> list[int]:
    """For each partition p, an int that ``repartition(num_partitions, key)`` sends to p
    (Spark's hash partitioning: ``pmod(hash(key), num_partitions)``)."""
    keys: dict[int, int] = {}
    candidate = 0
    while len(keys) < num_partitions:
        keys.setdefault(_spark_int_hash(candidate) % num_partitions, candidate)
        candidate += 1
    return [keys[partition] for partition in range(num_partitions)]


def partitioned_by_rank(df: Any, world_size: int, shard_by: str | None = None) -> Any:
    """``df`` in ``world_size`` partitions, partition r being rank r's shard: rows dealt
    round-robin, or, with ``shard_by``, exactly the rows whose ``shard_by`` value is r (that
    column left out). Spark has no identity partitioner, so each rank is mapped to a key that
    Spark's hash partitioning sends to that rank's partition."""
    from pyspark.sql import functions as F

    if shard_by is None:
        return df.repartition(world_size)
    keys = F.array(*[F.lit(key) for key in partition_keys(world_size)])
    key = F.element_at(keys, F.col(shard_by).cast("int") + 1)
    return df.repartition(world_size, key).drop(shard_by)


def empty_shard_error(rank: int, world_size: int) -> ValueError:
    return ValueError(
        f"Rank {rank}'s shard of the DataFrame is empty: expected at least one row per rank "
        f"({world_size} ranks), received 0. The DataFrame has fewer rows than ranks, or is empty; "
        "pass more rows, or fewer slots (Distributor(num_slots=...))."
    )


def split_dataframe_arguments(args: tuple, kwargs: dict) -> tuple[tuple, dict, Any]:
    """Replace the one DataFrame among ``run``'s arguments by a placeholder shard.

    Returns the new args, kwargs and the DataFrame (or None).
    """
    from pyspark.sql import DataFrame

    found: list[Any] = []

    def swap(value: Any) -> Any:
        if isinstance(value, DataFrame):
            found.append(value)
            return DataFrameShard(columns=tuple(value.columns))
        return value

    new_args = tuple(swap(value) for value in args)
    new_kwargs = {key: swap(value) for key, value in kwargs.items()}
    if len(found) > 1:
        raise ValueError(
            "Distributor.run shards one DataFrame per run; received "
            f"{len(found)}. Join them into one DataFrame first, or save the others and read them in fn."
        )
    return new_args, new_kwargs, (found[0] if found else None)


def bind_shards(
    args: tuple, kwargs: dict, path: str | None, num_rows: int, rank: int
) -> None:
    """Attach the rank's local shard file to the placeholder among the arguments (in the child)."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, DataFrameShard) and path is not None:
            value._bind(path, num_rows, rank)
