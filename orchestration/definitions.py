"""The Dagster code location: `dagster dev` and `dagster asset materialize` load this."""

from __future__ import annotations

import dagster as dg

from assets.catalog import stats_catalog
from assets.chunks import chunk_embeddings, chunks
from assets.entropy import anchors, entropy_profiles
from assets.ingest import corpus_shards
from assets.packing import baseline_dataset, packed_dataset
from assets.retrieval import retrieval_candidates, vector_index
from assets.token_weights import token_weights
from assets.tokenize import tokenized_docs
from assets.training import evaluation, trained_model
from assets.verification import verified_dependencies
from orchestration.k8s import executor
from orchestration.resources import PipelineResource
from orchestration.schedules import nightly_packing_job, nightly_packing_schedule
from orchestration.sensors import corpus_shard_sensor

defs = dg.Definitions(
    assets=[corpus_shards, tokenized_docs, entropy_profiles, anchors, chunks, chunk_embeddings,
            vector_index, retrieval_candidates, verified_dependencies, packed_dataset,
            baseline_dataset, token_weights, trained_model, evaluation, stats_catalog],
    jobs=[nightly_packing_job],
    schedules=[nightly_packing_schedule],
    sensors=[corpus_shard_sensor],
    resources={"pipeline": PipelineResource()},
    executor=executor(),
)
