"""The stage order, defined once: Dagster jobs, and the one function that runs them in order.

The Makefile (`elong demo`), the tests and anyone at the CLI (`dg launch --job NAME
--partition KEY`) use these jobs; the sensor and automation reach the same assets by
conditions. Each job holds assets of one partition set, so a job run is one shard, one root
shard, one training run, or the whole lake.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dagster as dg

from orchestration.partitions import (
    ROOT_SHARDS_PARTITION_NAME,
    RUNS_PARTITION_NAME,
    SHARDS_PARTITION_NAME,
)


@dataclass(frozen=True)
class Stage:
    job: str
    assets: tuple[str, ...]
    partitions: str | None  # the dynamic partition set the job runs over, one run per key
    description: str


STAGES: tuple[Stage, ...] = (
    Stage("ingest_shard", ("corpus_shards", "unit_counts", "tokenized_docs", "chunks",
                           "chunk_embeddings"),
          SHARDS_PARTITION_NAME, "Ingest, count sentences and words, tokenize, chunk and "
                                 "embed one shard."),
    Stage("count_recurring", ("recurring_text",), None,
          "Sentences recurring across documents and word document frequencies, lake-wide."),
    Stage("score_roots", ("entropy_profiles", "anchors"), ROOT_SHARDS_PARTITION_NAME,
          "Entropy profiles and anchors of one root shard (GPU)."),
    Stage("build_index", ("vector_index",), None,
          "Sync the LanceDB index with every pool shard's embeddings."),
    Stage("verify_roots", ("retrieval_candidates", "verified_dependencies"),
          ROOT_SHARDS_PARTITION_NAME,
          "Retrieve candidates for one root shard's anchors and verify them (GPU)."),
    Stage("pack", ("packed_dataset", "baseline_dataset", "stats_catalog"), None,
          "Pack the EntropyLong and baseline datasets and refresh the catalog."),
    Stage("weigh_tokens", ("token_weights",), None,
          "Frozen short-context scores of both packed datasets (GPU)."),
    Stage("check_distances", ("distance_check",), None,
          "Re-score a sample of packed dependencies where packing put them: dI at distance "
          "beside dI adjacent (GPU)."),
    Stage("train", ("trained_model", "evaluation"), RUNS_PARTITION_NAME,
          "Train one configured run and evaluate it (GPU)."),
    Stage("refresh_catalog", ("stats_catalog",), None, "Rebuild the DuckDB catalog."),
)
DATA_STAGES = ("ingest_shard", "count_recurring", "score_roots", "build_index",
               "verify_roots", "pack")
TRAIN_STAGES = ("weigh_tokens", "check_distances", "train", "refresh_catalog")


def asset_jobs() -> list[dg.UnresolvedAssetJobDefinition]:
    return [dg.define_asset_job(s.job, selection=dg.AssetSelection.assets(*s.assets)
                                .required_multi_asset_neighbors(),
                                description=s.description) for s in STAGES]


def run_stages(defs: dg.Definitions, instance: dg.DagsterInstance, names: Sequence[str],
               log: Callable[[str], None] = print, raise_on_error: bool = True) -> list:
    """Execute the named stages in order, in this process, each job once per partition
    key registered in the instance (one run per shard, as a backfill would); returns the
    asset check evaluations of every run."""
    checks = []
    by_name = {s.job: s for s in STAGES}
    for name in names:
        stage = by_name[name]
        job = defs.resolve_job_def(stage.job)
        keys = instance.get_dynamic_partitions(stage.partitions) if stage.partitions else [None]
        for key in keys:
            label = stage.job + (f" {key}" if key else "")
            log(f"== {label}")
            start = time.perf_counter()
            res = job.execute_in_process(instance=instance, partition_key=key,
                                         raise_on_error=raise_on_error)
            log(f"   {label}: {'ok' if res.success else 'FAILED'} in "
                f"{time.perf_counter() - start:.0f} s")
            checks.extend(res.get_asset_check_evaluations())
    return checks
