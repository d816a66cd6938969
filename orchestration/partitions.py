"""Partitions shared by every per-shard asset: one dynamic partition per corpus shard."""

from __future__ import annotations

import dagster as dg

SHARDS_PARTITION_NAME = "shards"

# Keys are "<corpus>/<shard>"; the shard sensor (or `elong register`) adds them.
shards_partitions = dg.DynamicPartitionsDefinition(name=SHARDS_PARTITION_NAME)
