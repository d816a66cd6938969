"""Partitions by role: every shard, the root shards (scored for anchors), training runs.

Keys are ``"<corpus>/<shard>"`` in both shard sets; a shard of a corpus with the root role
is in both. Stages that only make sense for roots (entropy, anchors, retrieval,
verification) are partitioned over root shards, so none of their materializations is an
empty table of a pool shard.
"""

from __future__ import annotations

import dagster as dg

SHARDS_PARTITION_NAME = "shards"

# Keys are "<corpus>/<shard>"; the shard sensor (or `elong register`) adds them.
shards_partitions = dg.DynamicPartitionsDefinition(name=SHARDS_PARTITION_NAME)

ROOT_SHARDS_PARTITION_NAME = "root_shards"
root_shards_partitions = dg.DynamicPartitionsDefinition(name=ROOT_SHARDS_PARTITION_NAME)

# Training runs (`training.runs` in the config); `elong register` adds them.
RUNS_PARTITION_NAME = "training_runs"
runs_partitions = dg.DynamicPartitionsDefinition(name=RUNS_PARTITION_NAME)

# A backfill launches one run per shard: a GPU step holds one shard's work, a failed shard
# fails alone and retries alone, and the per-shard assets read `context.partition_key`.
PER_SHARD_BACKFILL = dg.BackfillPolicy.multi_run(max_partitions_per_run=1)

# Transient failures (an object store timing out, a LanceDB commit conflict, a pre-empted
# GPU) are retried with backoff; a corrupt shard fails the same way each attempt and then
# stops, with its error on the step.
TRANSIENT_RETRY = dg.RetryPolicy(max_retries=2, delay=20, backoff=dg.Backoff.EXPONENTIAL)
