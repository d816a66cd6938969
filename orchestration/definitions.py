"""The Dagster code location: `dagster dev` and `dagster asset materialize` load this."""

from __future__ import annotations

import dagster as dg

from assets.catalog import stats_catalog
from assets.ingest import corpus_shards
from orchestration.resources import PipelineResource
from orchestration.sensors import corpus_shard_sensor

defs = dg.Definitions(
    assets=[corpus_shards, stats_catalog],
    sensors=[corpus_shard_sensor],
    resources={"pipeline": PipelineResource()},
)
