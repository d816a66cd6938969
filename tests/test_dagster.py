"""The Dagster code location: validates, materializes per shard, isolates a bad shard."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from lakehouse.catalog import query
from lakehouse.storage import leftover_temp_files
from orchestration.config import load_config
from orchestration.definitions import build_definitions
from orchestration.discovery import configured_shards
from orchestration.partitions import ROOT_SHARDS_PARTITION_NAME, SHARDS_PARTITION_NAME
from orchestration.sensors import INGEST_ASSETS, corpus_shard_sensor
from tests.conftest import materialize

PROJECT = Path(__file__).resolve().parents[1]


def test_dg_check_defs_passes(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    (tmp_path / "dagster.yaml").write_text((PROJECT / "dagster.yaml").read_text())
    dg_cli = Path(sys.executable).with_name("dg")
    proc = subprocess.run([str(dg_cli), "check", "defs"], cwd=PROJECT, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


def test_definitions_hold_every_stage_and_the_jobs():
    defs = build_definitions()
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"corpus_shards", "quarantine", "anchors", "vector_index", "packed_dataset",
            "baseline_dataset", "stats_catalog"} <= keys
    jobs = {j.name for j in defs.resolve_all_job_defs()}
    assert {"ingest_shard", "score_roots", "build_index", "verify_roots", "pack"} <= jobs
    sensors = {s.name: s.default_status for s in defs.sensors}
    assert sensors["default_automation_condition_sensor"] == dg.DefaultSensorStatus.RUNNING
    assert sensors["corpus_shard_sensor"] == dg.DefaultSensorStatus.RUNNING


def test_root_only_stages_are_partitioned_over_root_shards():
    graph = build_definitions().resolve_asset_graph()
    for name in ("entropy_profiles", "anchors", "retrieval_candidates",
                 "verified_dependencies"):
        assert graph.get(dg.AssetKey(name)).partitions_def.name == ROOT_SHARDS_PARTITION_NAME
    for name in ("corpus_shards", "tokenized_docs", "chunks", "chunk_embeddings"):
        assert graph.get(dg.AssetKey(name)).partitions_def.name == SHARDS_PARTITION_NAME


def _materialize_all(instance: dg.DagsterInstance, config_path: Path) -> dict[str, bool]:
    keys = [r.key for r in configured_shards(load_config(config_path))]
    instance.add_dynamic_partitions(SHARDS_PARTITION_NAME, keys)
    outcome = {}
    for key in keys:
        res = materialize(config_path, INGEST_ASSETS, key, instance, raise_on_error=False)
        outcome[key] = res.success
    return outcome


def _lake_bytes(lake: Path) -> dict[str, bytes]:
    return {str(p.relative_to(lake)): p.read_bytes() for p in sorted(lake.rglob("*.parquet"))}


def test_materialize_every_shard_then_catalog_counts(demo_config):
    instance = dg.DagsterInstance.ephemeral()
    outcome = _materialize_all(instance, demo_config)
    assert outcome and all(outcome.values())
    assert materialize(demo_config, ["stats_catalog"], None, instance).success

    catalog = load_config(demo_config).catalog_path
    _, rows = query(catalog, "SELECT corpus, shards, rows_in, docs, duplicates, quarantined, "
                             "balanced FROM corpus_summary")
    # small demo: planted 4 roots + 3 bad rows (null, blank, copy); its pool 4 sources and 2
    # distractors; pystdlib 6 modules + 3 bad lines (malformed, undecodable, non-string)
    assert rows == [("planted", 2, 7, 4, 1, 2, True), ("planted-pool", 1, 6, 6, 0, 0, True),
                    ("pystdlib", 1, 9, 6, 0, 3, True)]
    _, reasons = query(catalog, "SELECT corpus, reason, rows FROM quarantine_reasons")
    assert sorted(reasons) == [("planted", "empty_after_cleaning", 1),
                               ("planted", "missing_text", 1),
                               ("pystdlib", "malformed_json", 1),
                               ("pystdlib", "non_string_text", 1),
                               ("pystdlib", "undecodable_bytes", 1)]
    _, (n_docs,) = query(catalog, "SELECT count(*) FROM docs")
    assert n_docs == (16,)
    _, truth = query(catalog, "SELECT count(*) FROM planted_ground_truth "
                              "JOIN docs ON docs.doc_id = root_doc_id")
    assert truth == [(16,)]  # 4 stories x 4 facts, every root present in docs


def test_rematerializing_gives_identical_bytes_and_leaves_no_temp_files(demo_config):
    lake = Path(load_config(demo_config).lake)
    assert all(_materialize_all(dg.DagsterInstance.ephemeral(), demo_config).values())
    first = _lake_bytes(lake)
    assert all(_materialize_all(dg.DagsterInstance.ephemeral(), demo_config).values())
    assert _lake_bytes(lake) == first
    assert len(first) == 4 * 4  # 4 shards x (docs, quarantine, duplicates, stats)
    assert leftover_temp_files(lake) == []


def test_the_count_check_runs_and_passes_per_partition(demo_config):
    instance = dg.DagsterInstance.ephemeral()
    key = configured_shards(load_config(demo_config))[0].key
    instance.add_dynamic_partitions(SHARDS_PARTITION_NAME, [key])
    res = materialize(demo_config, INGEST_ASSETS, key, instance)
    checks = res.get_asset_check_evaluations()
    assert [(c.check_name, c.passed) for c in checks] == [("counts_balance", True)]


def test_a_corrupt_shard_fails_only_its_own_partition(demo_config):
    config = load_config(demo_config)
    corrupt = Path(config.corpus("planted").uri) / "shard-00001.parquet"
    corrupt.write_bytes(b"PAR1 garbage that is not a parquet file")
    instance = dg.DagsterInstance.ephemeral()
    outcome = _materialize_all(instance, demo_config)
    assert outcome == {"planted/shard-00000": True, "planted/shard-00001": False,
                       "planted-pool/shard-00000": True, "pystdlib/shard-00000": True}
    (failed_run,) = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
    failures = [e for e in instance.all_logs(failed_run.run_id)
                if e.dagster_event and e.dagster_event.is_step_failure]
    message = failures[0].dagster_event.step_failure_data.error.to_string()
    assert "shard-00001.parquet" in message and "not a readable Parquet file" in message


def test_sensor_adds_new_shards_as_partitions_and_requests_their_runs(demo_config):
    instance = dg.DagsterInstance.ephemeral()
    ctx = dg.build_sensor_context(instance=instance)
    result = corpus_shard_sensor(ctx)
    expected = ["planted/shard-00000", "planted/shard-00001", "planted-pool/shard-00000",
                "pystdlib/shard-00000"]
    assert [r.partition_key for r in result.run_requests] == expected
    shards, roots = result.dynamic_partitions_requests
    assert shards.partition_keys == expected
    # only root corpora's shards get root partitions (the planted pool is a pool only)
    assert roots.partitions_def_name == ROOT_SHARDS_PARTITION_NAME
    assert roots.partition_keys == [k for k in expected if not k.startswith("planted-pool")]
    assert set(result.run_requests[0].asset_selection) == {dg.AssetKey(a) for a in INGEST_ASSETS}
    instance.add_dynamic_partitions(SHARDS_PARTITION_NAME, expected)
    again = corpus_shard_sensor(dg.build_sensor_context(instance=instance))
    assert not again.run_requests


@pytest.mark.parametrize("bad", ["corpora: [{name: 'a/b', uri: x}]",
                                 "corpora: [{name: a, uri: x}, {name: a, uri: y}]",
                                 "lake: l\nunknown_key: 1"])
def test_invalid_config_is_rejected_with_the_file_name(tmp_path, bad):
    path = tmp_path / "pipeline.yaml"
    path.write_text(bad)
    with pytest.raises(ValueError, match="pipeline.yaml"):
        load_config(path)
