"""The executor core every DataFrame operation of deepframes runs on.

Block functions (``deepframes.blocks``) and model stages (``deepframes.inference``) share one
mechanism: Arrow batches <-> NumPy arrays (``arrays``), tensor shapes in column metadata
(``shapes``), exact re-batching and prefetching (``batching``), a few first rows read on the
driver (``sampling``), and one builder for the Arrow UDFs that append columns (``udf``). Nothing
here knows about models or block functions; both build on it.
"""
