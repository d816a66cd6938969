"""What Dagster shows is what runs: declared reads equal real reads, and a changed setting
marks exactly the assets that depend on it (and their downstream) stale."""

from __future__ import annotations

import dagster as dg
import pytest
import yaml
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

from orchestration.definitions import build_definitions
from orchestration.lake_assets import (
    REGISTRY,
    UndeclaredRead,
    lineage_settings,
    settings_fingerprint,
)
from tests.test_pipeline import run_pipeline

UPSTREAM_OF_ANCHORS = ["corpus_shards", "tokenized_docs", "entropy_profiles", "chunks",
                       "chunk_embeddings", "vector_index"]
DOWNSTREAM_OF_ANCHORS = ["anchors", "retrieval_candidates", "verified_dependencies",
                         "packed_dataset", "baseline_dataset", "stats_catalog"]


def _status(defs: dg.Definitions, instance: dg.DagsterInstance, asset: str,
            partition: str | None) -> StaleStatus:
    resolver = CachingStaleStatusResolver(instance, defs.resolve_asset_graph(),
                                          LoadingContextForTest(instance))
    return resolver.get_status(dg.AssetKey(asset), partition)


@pytest.mark.slow  # the whole tiny pipeline (MiniLM)
def test_changing_a_setting_marks_exactly_its_downstream_stale(tiny_config):
    instance = dg.DagsterInstance.ephemeral()
    run_pipeline(tiny_config, instance, weights=False)
    root, partition = "stats_catalog", "planted/shard-00000"
    before = build_definitions(str(tiny_config))
    shard_assets = set(UPSTREAM_OF_ANCHORS + DOWNSTREAM_OF_ANCHORS[:3]) - {"vector_index"}
    key = {a: partition if a in shard_assets else None for a in
           UPSTREAM_OF_ANCHORS + DOWNSTREAM_OF_ANCHORS}
    assert all(_status(before, instance, a, key[a]) == StaleStatus.FRESH for a in key), root

    config = yaml.safe_load(tiny_config.read_text())
    config["anchors"]["alpha"] = 1.5
    tiny_config.write_text(yaml.safe_dump(config, sort_keys=False))
    after = build_definitions(str(tiny_config))
    for asset in UPSTREAM_OF_ANCHORS:
        assert _status(after, instance, asset, key[asset]) == StaleStatus.FRESH, asset
    for asset in DOWNSTREAM_OF_ANCHORS:
        assert _status(after, instance, asset, key[asset]) == StaleStatus.STALE, asset


def test_settings_fingerprint_follows_only_the_declared_settings(tiny_config):
    from orchestration.config import load_config

    config = load_config(tiny_config)
    changed = config.model_copy(update={"anchors": config.anchors.model_copy(
        update={"alpha": 3.0})})
    downstream = {"anchors", "retrieval_candidates", "verified_dependencies", "packed_dataset",
                  "baseline_dataset", "token_weights", "distance_check", "trained_model",
                  "evaluation", "stats_catalog"}
    for name, spec in REGISTRY.items():
        paths = lineage_settings(spec)
        same = settings_fingerprint(config, paths) == settings_fingerprint(changed, paths)
        assert same == (name not in downstream), name


def test_an_undeclared_read_fails_the_run(tiny_config, monkeypatch):
    from orchestration.lake_assets import StageContext

    spec = REGISTRY["chunks"]
    ctx = StageContext(spec, None, None)  # reads are refused before anything is touched
    with pytest.raises(UndeclaredRead, match="does not declare"):
        ctx.shard_table("entropy_profiles")
    with pytest.raises(UndeclaredRead, match="declares shard"):
        ctx.lake_dataset("tokenized_docs")
