"""The corpus sensor end to end: new shards ingest, changed shards re-run, removed shards
are reported; runs execute in process."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from orchestration.definitions import defs
from orchestration.resources import PipelineResource
from orchestration.sensors import SHARD_ASSETS, corpus_shard_sensor
from tests.conftest import save_tiny_scorer, write_config

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
    resources = {"pipeline": PipelineResource(config_path=str(config))}
    for req in result.run_requests:
        res = dg.materialize(list(defs.assets), selection=req.asset_selection,
                             partition_key=req.partition_key, instance=instance,
                             resources=resources, tags=req.tags)
        assert res.success


def _materialized(instance: dg.DagsterInstance, asset: str) -> dict[str, int]:
    """Partition -> number of materializations of ``asset``."""
    counts: dict[str, int] = {}
    records = instance.fetch_materializations(dg.AssetKey(asset), limit=1000).records
    for r in records:
        key = r.asset_materialization.partition
        counts[key] = counts.get(key, 0) + 1
    return counts


@pytest.mark.slow  # loads MiniLM for chunk_embeddings
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
    assert set(first.run_requests[0].asset_selection) == {dg.AssetKey(a) for a in SHARD_ASSETS}
    _execute(first, instance, config)
    quiet = _tick(instance, first.cursor)
    assert not quiet.run_requests

    # a new shard dropped into the watched folder: only its partition runs
    _write_shard(corpus, "part-1", TEXTS[6:])
    second = _tick(instance, quiet.cursor)
    assert [(r.partition_key, r.tags["elong/reason"]) for r in second.run_requests] == \
        [("logs/part-1", "new_shard")]
    _execute(second, instance, config)
    for asset in SHARD_ASSETS:
        assert _materialized(instance, asset) == {"logs/part-0": 1, "logs/part-1": 1}, asset

    # the shard's content changes: only that shard's assets re-run
    _write_shard(corpus, "part-1", TEXTS[6:] + ["A record added later, about fog."])
    third = _tick(instance, second.cursor)
    assert [(r.partition_key, r.tags["elong/reason"]) for r in third.run_requests] == \
        [("logs/part-1", "changed_shard")]
    assert third.run_requests[0].run_key != second.run_requests[0].run_key
    _execute(third, instance, config)
    for asset in SHARD_ASSETS:
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
    instance.add_dynamic_partitions("shards", ["logs/part-0"])
    # Entropies above ln V are what a broken kernel would produce; shrinking the bound the
    # check compares against makes every real entropy count as out of range.
    monkeypatch.setattr(assets.entropy, "max_entropy", lambda vocab: -1.0)
    res = dg.materialize(list(defs.assets),
                         selection=["corpus_shards", "tokenized_docs", "entropy_profiles",
                                    "anchors"],
                         partition_key="logs/part-0", instance=instance,
                         resources={"pipeline": PipelineResource(config_path=str(config))},
                         raise_on_error=False)
    assert not res.success
    (check,) = [c for c in res.get_asset_check_evaluations()
                if c.check_name == "entropy_in_range"]
    assert not check.passed
    assert _materialized(instance, "entropy_profiles") == {"logs/part-0": 1}
    assert _materialized(instance, "anchors") == {}  # stopped by the blocking check
    started = {e.step_key for e in res.all_events if e.event_type_value == "STEP_START"}
    assert "entropy_profiles" in started and "anchors" not in started


def test_a_new_shards_embeddings_make_the_index_sync_by_itself(tmp_path, monkeypatch):
    """vector_index is eager: once a shard's chunk_embeddings land, automation requests it;
    retrieval and verification wait for their nightly tick."""
    corpus = tmp_path / "corpora" / "logs"
    corpus.mkdir(parents=True)
    _write_shard(corpus, "part-0", TEXTS)
    config = write_config(tmp_path, [{"name": "logs", "uri": "corpora/logs",
                                      "format": "jsonl"}])
    monkeypatch.setenv("ELONG_CONFIG", str(config))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("shards", ["logs/part-0"])
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    # an eager asset with nothing upstream materialized yet waits
    assert first.get_num_requested(dg.AssetKey("vector_index")) == 0
    instance.report_runless_asset_event(
        dg.AssetMaterialization(dg.AssetKey("chunk_embeddings"), partition="logs/part-0"))
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance,
                                               cursor=first.cursor)
    assert second.get_num_requested(dg.AssetKey("vector_index")) == 1
    assert second.get_num_requested(dg.AssetKey("retrieval_candidates")) == 0
    assert second.get_num_requested(dg.AssetKey("verified_dependencies")) == 0
