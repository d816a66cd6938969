"""The corpus sensor end to end: new shards ingest, changed shards re-run, removed shards
are reported; runs execute in process."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest

from orchestration.cli import register
from orchestration.definitions import build_definitions
from orchestration.jobs import DATA_STAGES, run_stages
from orchestration.sensors import INGEST_ASSETS, corpus_shard_sensor
from tests.conftest import materialize, save_tiny_scorer, write_config

pytest_plugins = ("tests.postgres",)  # the postgres_url fixture

TEXTS = [f"Record {i}. The keeper of lighthouse number {i} wrote the weather down at dawn, "
         f"noting wind, rain and the ships that passed the rocks before noon." for i in range(12)]


def _write_shard(folder: Path, name: str, texts: list[str]) -> None:
    lines = [json.dumps({"id": f"{name}-{i}", "text": t}) for i, t in enumerate(texts)]
    (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n")


def _tick(instance: dg.DagsterInstance, cursor: str | None):
    result = corpus_shard_sensor(dg.build_sensor_context(instance=instance, cursor=cursor))
    for req in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    return result


def _execute(result, instance, config: Path) -> None:
    for req in result.run_requests:
        res = materialize(config, [k.to_user_string() for k in req.asset_selection],
                          req.partition_key, instance, tags=req.tags)
        assert res.success


def _materialized(instance: dg.DagsterInstance, asset: str) -> dict[str, int]:
    """Partition -> number of materializations of ``asset``."""
    counts: dict[str, int] = {}
    records = instance.fetch_materializations(dg.AssetKey(asset), limit=1000).records
    for r in records:
        key = r.asset_materialization.partition
        counts[key] = counts.get(key, 0) + 1
    return counts


def _latest_metadata(instance: dg.DagsterInstance, asset: str, partition: str) -> dict:
    """The metadata values of ``asset``'s latest materialization of ``partition``."""
    (record,) = instance.fetch_materializations(dg.AssetRecordsFilter(
        asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1).records
    return {k: getattr(v, "value", v) for k, v in
            record.asset_materialization.metadata.items()}


def test_sensor_runs_new_shards_then_only_the_changed_one(tmp_path, monkeypatch):
    corpus = tmp_path / "corpora" / "logs"
    corpus.mkdir(parents=True)
    scorer = save_tiny_scorer(tmp_path / "tiny-scorer", TEXTS)
    config = write_config(tmp_path, [{"name": "logs", "uri": "corpora/logs",
                                      "format": "jsonl"}],
                          models={"scorer": str(scorer)},
                          scoring={"window": 0, "overlap": 64, "token_budget": 2048},
                          chunking={"size": 48})
    monkeypatch.setenv("ELONG_CONFIG", str(config))
    instance = dg.DagsterInstance.ephemeral()

    _write_shard(corpus, "part-0", TEXTS[:6])
    first = _tick(instance, None)
    assert [r.partition_key for r in first.run_requests] == ["logs/part-0"]
    assert set(first.run_requests[0].asset_selection) == {dg.AssetKey(a) for a in INGEST_ASSETS}
    _execute(first, instance, config)
    quiet = _tick(instance, first.cursor)
    assert not quiet.run_requests

    # a new shard dropped into the watched folder: only its partition runs
    _write_shard(corpus, "part-1", TEXTS[6:])
    second = _tick(instance, quiet.cursor)
    assert [(r.partition_key, r.tags["elong/reason"]) for r in second.run_requests] == \
        [("logs/part-1", "new_shard")]
    _execute(second, instance, config)
    for asset in INGEST_ASSETS:
        assert _materialized(instance, asset) == {"logs/part-0": 1, "logs/part-1": 1}, asset

    # the shard's content changes: only that shard's assets re-run
    _write_shard(corpus, "part-1", TEXTS[6:] + ["A record added later, about fog."])
    third = _tick(instance, second.cursor)
    assert [(r.partition_key, r.tags["elong/reason"]) for r in third.run_requests] == \
        [("logs/part-1", "changed_shard")]
    assert third.run_requests[0].run_key != second.run_requests[0].run_key
    _execute(third, instance, config)
    for asset in INGEST_ASSETS:
        assert _materialized(instance, asset) == {"logs/part-0": 1, "logs/part-1": 2}, asset

    # touching a file without changing its bytes re-hashes it but requests nothing
    (corpus / "part-0.jsonl").write_text((corpus / "part-0.jsonl").read_text())
    assert not _tick(instance, third.cursor).run_requests

    # a removed shard is reported, not silently kept or re-run
    (corpus / "part-0.jsonl").unlink()
    gone = _tick(instance, third.cursor)
    assert not gone.run_requests and "removed: logs/part-0" in gone.skip_reason.skip_message
    assert json.loads(gone.cursor)["removed"] == ["logs/part-0"]


def test_a_failing_blocking_check_stops_its_downstream_assets(tmp_path, monkeypatch):
    import assets.entropy

    corpus = tmp_path / "corpora" / "logs"
    corpus.mkdir(parents=True)
    _write_shard(corpus, "part-0", TEXTS)
    scorer = save_tiny_scorer(tmp_path / "tiny-scorer", TEXTS)
    config = write_config(tmp_path, [{"name": "logs", "uri": "corpora/logs",
                                      "format": "jsonl"}],
                          models={"scorer": str(scorer)},
                          scoring={"window": 0, "overlap": 64, "token_budget": 2048})
    monkeypatch.setenv("ELONG_CONFIG", str(config))
    instance = dg.DagsterInstance.ephemeral()
    register(config, instance)
    assert materialize(config, [*INGEST_ASSETS, "tokenized_docs"], "logs/part-0",
                       instance).success
    # Entropies above ln V are what a broken kernel would produce; shrinking the bound the
    # check compares against makes every real entropy count as out of range.
    monkeypatch.setattr(assets.entropy, "max_entropy", lambda vocab: -1.0)
    res = materialize(config, ["entropy_profiles", "anchors"], "logs/part-0", instance,
                      raise_on_error=False)
    assert not res.success
    (check,) = [c for c in res.get_asset_check_evaluations()
                if c.check_name == "entropy_in_range"]
    assert not check.passed
    assert _materialized(instance, "entropy_profiles") == {"logs/part-0": 1}
    assert _materialized(instance, "anchors") == {}  # stopped by the blocking check
    started = {e.step_key for e in res.all_events if e.event_type_value == "STEP_START"}
    assert "entropy_profiles" in started and "anchors" not in started


def _drain_automation(defs: dg.Definitions, instance: dg.DagsterInstance, config: Path,
                      cursor=None, max_ticks: int = 20):
    """Run the automation sensor's evaluation in process, tick after tick, launching what it
    requests (one run per asset partition set and key, as the daemon does), until it
    requests nothing; returns the last cursor."""
    graph = defs.resolve_asset_graph()
    for _ in range(max_ticks):
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        cursor = result.cursor
        if not result.total_requested:
            return cursor
        runs: dict[tuple, list[str]] = {}
        for key in graph.get_all_asset_keys():
            pdef = graph.get(key).partitions_def
            for part in (result.get_requested_partitions(key)
                         if result.get_num_requested(key) else []):
                runs.setdefault((pdef.name if pdef else None, part), []).append(
                    key.to_user_string())
        for (_, part), selection in sorted(runs.items(), key=lambda kv: str(kv[0])):
            assert materialize(config, selection, part, instance).success, selection
    raise AssertionError("automation kept requesting runs")


@contextmanager
def _instance(kind: str, request: pytest.FixtureRequest, tmp_path: Path):
    """An in-memory instance, or one on a throw-away PostgreSQL server with dagster-postgres
    (what the Helm values configure on a cluster)."""
    if kind == "ephemeral":
        yield dg.DagsterInstance.ephemeral()
        return
    url = request.getfixturevalue("postgres_url")
    with dg.instance_for_test(overrides={"storage": {"postgres": {"postgres_url": url}}},
                              temp_dir=str(tmp_path)) as instance:
        yield instance


@pytest.mark.slow  # loads MiniLM for chunk_embeddings and queries
@pytest.mark.parametrize("storage", ["ephemeral", "postgres"])
def test_a_new_shard_flows_through_every_stage_by_automation(tmp_path, monkeypatch, storage,
                                                             request):
    corpus = tmp_path / "corpora" / "logs"
    corpus.mkdir(parents=True)
    scorer = save_tiny_scorer(tmp_path / "tiny-scorer", TEXTS)
    config = write_config(tmp_path, [{"name": "logs", "uri": "corpora/logs",
                                      "format": "jsonl"}],
                          models={"scorer": str(scorer)},
                          scoring={"window": 0, "overlap": 64, "token_budget": 2048},
                          chunking={"size": 48}, anchors={"alpha": 1.0},
                          retrieval={"k": 2}, verification={"rule": "delta_i", "epsilon": 0.0})
    monkeypatch.setenv("ELONG_CONFIG", str(config))
    with _instance(storage, request, tmp_path) as instance:
        _flow(instance, corpus, config)


def _flow(instance: dg.DagsterInstance, corpus: Path, config: Path) -> None:
    defs = build_definitions(str(config))
    _write_shard(corpus, "part-0", TEXTS[:6])
    first = _tick(instance, None)
    run_stages(defs, instance, DATA_STAGES, log=lambda _: None)
    cursor = _drain_automation(defs, instance, config)  # the daemon's first look: all fresh
    before = {a: _materialized(instance, a) for a in ALL_STAGES}

    _write_shard(corpus, "part-1", TEXTS[6:])
    second = _tick(instance, first.cursor)
    _execute(second, instance, config)
    _drain_automation(defs, instance, config, cursor)
    after = {a: _materialized(instance, a) for a in ALL_STAGES}
    new = {a: {k: n - before[a].get(k, 0) for k, n in after[a].items()
               if n != before[a].get(k, 0)} for a in ALL_STAGES}
    # the new shard's own stages ran once; the old shard's did not re-run
    for asset in ("corpus_shards", "unit_counts", "tokenized_docs", "chunks",
                  "chunk_embeddings", "entropy_profiles"):
        assert new[asset] == {"logs/part-1": 1}, (asset, new[asset])
    # the lake's recurring text was recounted with the new documents; an old root shard's
    # anchors followed only if the set of recurring units moved (its data version), since an
    # anchor is never placed in recurring text; the new shard's anchors ran once
    assert new["recurring_text"] == {None: 1}
    versions = [r.asset_materialization.tags["dagster/data_version"] for r in
                instance.fetch_materializations(dg.AssetKey("recurring_text"), limit=2).records]
    moved = versions[0] != versions[1]
    assert new["anchors"] == {"logs/part-0": 1, "logs/part-1": 1} if moved else \
        {"logs/part-1": 1}, (moved, new["anchors"])
    # the index took the new chunks, so every root shard's retrieval and verification
    # followed (old roots may now find the new shard's chunks), then packing and catalog.
    # (A new root shard's retrieval may run twice: once on its anchors, once after the index
    # sync, when the two land in different ticks.)
    assert new["vector_index"] == {None: 1}
    for asset in ("retrieval_candidates", "verified_dependencies"):
        assert set(new[asset]) == {"logs/part-0", "logs/part-1"}, (asset, new[asset])
        assert new[asset]["logs/part-0"] == 1, (asset, new[asset])
    # ... but part-0's verification forwarded only the pairs it had not seen: every other
    # (root, chunk) pass came from its pass store, and its rows were decided again over all
    meta = _latest_metadata(instance, "verified_dependencies", "logs/part-0")
    assert meta["passes_reused"] > 0, meta
    search = _latest_metadata(instance, "retrieval_candidates", "logs/part-0")
    assert search["search"] in ("incremental", "full") and search["search_reason"], search
    for asset in ("packed_dataset", "baseline_dataset", "stats_catalog"):
        assert new[asset].get(None, 0) >= 1, (asset, new[asset])
    # training is never automatic
    assert after["trained_model"] == {} and after["token_weights"] == {}


ALL_STAGES = ["corpus_shards", "unit_counts", "recurring_text", "tokenized_docs", "chunks",
              "chunk_embeddings",
              "entropy_profiles", "anchors", "vector_index", "retrieval_candidates",
              "verified_dependencies", "packed_dataset", "baseline_dataset", "stats_catalog",
              "token_weights", "trained_model"]
