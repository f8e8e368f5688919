"""How fit deals the training rows to its slots: slot r gets the r-th part of every global batch."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from deepframes import Distributor
from deepframes.training.data import (
    FEATURES,
    INDEX,
    RANK,
    VALIDATION,
    indexed_frame,
    summarize,
    training_frame,
    with_ranks,
)


def _rows_in_order(spark, num_rows: int, validation_fraction: float):
    df = spark.createDataFrame(spark.sparkContext.parallelize([([float(i)], i % 3) for i in range(num_rows)], 3),
                               "features array<float>, label long")
    frame = training_frame(df, "features", "label", validation_fraction, seed=5)
    summary = summarize(frame)
    return frame, summary, indexed_frame(frame, summary)


def test_index_numbers_training_rows_in_partition_order(spark):
    frame, summary, indexed = _rows_in_order(spark, 75, 0.2)
    in_order = [row[FEATURES][0] for row in frame.where(~F.col(VALIDATION)).collect()]
    by_index = {row[INDEX]: row[FEATURES][0] for row in indexed.where(~F.col(VALIDATION)).collect()}
    assert [by_index[index] for index in range(len(in_order))] == in_order
    held = sorted(row[INDEX] for row in indexed.where(F.col(VALIDATION)).collect())
    assert held == list(range(summary.num_validation)) and summary.num_validation > 0


@pytest.mark.parametrize(("num_rows", "batch_size", "world_size"), [(64, 8, 2), (75, 8, 2), (70, 12, 3)])
def test_each_slot_takes_its_part_of_every_global_batch(spark, num_rows, batch_size, world_size):
    _, summary, indexed = _rows_in_order(spark, num_rows, 0.0)
    ranks = {row[INDEX]: row[RANK] for row in with_ranks(indexed, summary.num_train, batch_size, world_size).collect()}
    part = batch_size // world_size
    full = summary.num_train // batch_size * batch_size
    assert all(ranks[index] == index % batch_size // part for index in range(full))
    last = summary.num_train - full
    for rank in range(world_size):  # the last, partial batch: equal consecutive parts, the rest one to a slot
        mine = [index - full for index in range(full, summary.num_train) if ranks[index] == rank]
        assert mine[: last // world_size] == list(range(rank * (last // world_size), (rank + 1) * (last // world_size)))
        assert len(mine) - last // world_size <= 1


def _shard_values(ctx, shard):
    return sorted(int(value) for value in ctx.shard(shard).to_numpy()["id"])


@pytest.mark.parametrize("local_mode", [False, True])
def test_distributor_shard_by_gives_each_rank_exactly_its_rows(spark, local_mode):
    df = spark.range(0, 60, 1, 4).withColumn("slot", (F.col("id") % 5 < 2).cast("int"))
    shards = Distributor(2, shard_by="slot", return_ranks="all", local_mode=local_mode).run(_shard_values, df)
    assert shards == [[i for i in range(60) if (i % 5 < 2) == rank] for rank in range(2)]
