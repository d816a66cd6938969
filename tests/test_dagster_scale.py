"""bench.dagster_scale at a small lake: what it times is what it claims (the sensor asks for
the one new shard, automation for that shard's next stages and, after an index update, for
every older root shard's retrieval; the catalog counts every shard), and its fast way of
recording materializations reads back like Dagster's own."""

from __future__ import annotations

import json
import os

import dagster as dg
import pytest

from bench.dagster_scale import (
    POOL_CORPUS,
    ROOT_CORPUS,
    instance_at,
    lake_state,
    measure,
    records,
    seed_materializations,
    simulate_lake,
)

N = 200


@pytest.fixture(scope="module")
def point(tmp_path_factory):
    before = os.environ.get("ELONG_CONFIG")
    out = measure(N, tmp_path_factory.mktemp("scale"), repeats=1, log=lambda _: None)
    assert os.environ.get("ELONG_CONFIG") == before  # restored
    return out


def test_registration_and_sensor_counts(point):
    roots = point["root_shards"]
    assert roots == N // 5
    assert point["registered"] == {"shards": N, "root_shards": roots, "training_runs": 3}
    assert point["registered_again"] == {"shards": 0, "root_shards": 0, "training_runs": 0}
    assert (point["partitions"], point["root_partitions"]) == (N, roots)
    # an unregistered lake: one ingest run per shard; after register: none, nothing new
    assert point["sensor_all_new_requests"] == N
    assert point["sensor_first_requests"] == 0 and point["sensor_steady_requests"] == 0
    # one new root shard: exactly its run, and its key added to both shard sets
    new = point["new_shard"]
    assert new.startswith(f"{ROOT_CORPUS}/")
    assert point["sensor_new_requested"] == [new]
    assert point["sensor_new_partition_requests"] == {"shards": [new], "root_shards": [new]}


def test_automation_requests_only_what_changed(point):
    new = point["new_shard"]
    assert point["materializations"] > 9 * N  # every stage of every shard recorded
    assert point["auto_first_requested"] == 0 and point["auto_steady_requested"] == 0
    # the new shard's ingest landed: its next stages run, in one run, for it alone
    wanted = point["auto_new_requested"]
    assert {"unit_counts", "tokenized_docs"} <= set(wanted)
    assert all(parts == [new] for parts in wanted.values()), wanted
    assert point["auto_new_runs"] == 1
    # the index changed: every older root shard's retrieval (and its verification) follows,
    # as one backfill; the new shard waits for its own anchors
    old_roots = [f"{ROOT_CORPUS}/part-{i:06d}" for i in range(point["root_shards"])]
    assert point["auto_fanout_retrieval"] == old_roots
    assert point["auto_fanout_assets"] == {"retrieval_candidates": len(old_roots),
                                           "verified_dependencies": len(old_roots)}
    assert point["auto_fanout_backfills"] == 1


def test_catalog_counts_every_shard(point):
    roots = point["root_shards"] + 1  # with the new shard
    assert point["catalog_summary"] == {POOL_CORPUS: N - point["root_shards"],
                                        ROOT_CORPUS: roots}
    assert point["catalog_files"] == 6 * (N + 1) + 4 * roots
    assert point["catalog_views"] > 20


def test_records_name_their_baselines(point):
    recs = records([point], point)
    assert len(recs) == 10
    assert all(r.value > 0 and r.baseline > 0 for r in recs)
    json.dumps([r.params for r in recs])  # what report() writes


def test_fast_seeding_reads_back_like_report_runless_asset_event(tmp_path):
    from orchestration.definitions import build_definitions

    lake = simulate_lake(tmp_path / "lake", 5)
    defs = build_definitions(str(lake.config))
    events = lake_state(defs, lake.keys, lake.root_keys)
    fast, slow = instance_at(tmp_path / "fast"), instance_at(tmp_path / "slow")
    seed_materializations(fast, events, {"vector_index": "index-1"})
    for asset, partition in events:
        tags = {"dagster/data_version": "index-1"} if asset == "vector_index" else None
        slow.report_runless_asset_event(dg.AssetMaterialization(asset, partition=partition,
                                                                tags=tags))
    for asset in {a for a, _ in events}:
        key = dg.AssetKey(asset)
        assert fast.get_materialized_partitions(key) == slow.get_materialized_partitions(key)
        a = fast.get_latest_materialization_event(key)
        b = slow.get_latest_materialization_event(key)
        assert a.asset_materialization.partition == b.asset_materialization.partition
        assert a.asset_materialization.tags == b.asset_materialization.tags
        assert len(fast.fetch_materializations(key, limit=100).records) == \
            len(slow.fetch_materializations(key, limit=100).records)
    fast.dispose()
    slow.dispose()
