"""The corpus sensor: discovery. Shards that appear or change are ingested without anyone
asking; every later stage follows by its automation condition (orchestration.automation)."""

import json

import dagster as dg

from assets.ingest import SIDE_OUTPUTS
from orchestration.config import PipelineConfig, load_config
from orchestration.discovery import diff_shards, fingerprint_id
from orchestration.partitions import (
    SHARDS_PARTITION_NAME,
    root_shards_partitions,
    shards_partitions,
)

# The ingest step (one multi-asset): what a new or changed shard runs first.
INGEST_ASSETS = ["corpus_shards", *SIDE_OUTPUTS]


def partition_requests(config: PipelineConfig, keys: list[str]) -> list:
    """Add new shard keys to the shard set, and those of root corpora to the root set."""
    if not keys:
        return []
    roots = [k for k in keys if "root" in config.roles(k.partition("/")[0])]
    return [shards_partitions.build_add_request(keys)] + (
        [root_shards_partitions.build_add_request(roots)] if roots else [])


def _load_cursor(cursor: str | None) -> dict:
    state = json.loads(cursor) if cursor else {}
    return {"seen": state.get("seen", {}), "removed": state.get("removed", [])}


@dg.sensor(
    name="corpus_shard_sensor",
    asset_selection=dg.AssetSelection.assets(*INGEST_ASSETS),
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches the configured corpus locations. A new shard file becomes a "
                "`corpus/shard` partition and gets an ingest run (later stages follow by "
                "automation); a shard whose fingerprint (size, mtime, ETag; a local file's "
                "hash) changed gets the same run again; a shard whose file is gone is "
                "reported (its partition and outputs stay until removed by hand).",
)
def corpus_shard_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    state = _load_cursor(context.cursor)
    config = load_config()
    known = set(context.instance.get_dynamic_partitions(SHARDS_PARTITION_NAME))
    refs, found = diff_shards(config, state["seen"], known)
    newly_removed = [k for k in found.removed if k not in state["removed"]]
    for key in newly_removed:
        context.log.warning(f"shard {key}: its file is gone; the partition and its outputs "
                            "are kept until you delete them (dagster UI: Partitions)")
    # Fingerprints of removed shards are kept so a re-appearing file is compared with them.
    seen = {**{k: v for k, v in state["seen"].items() if k in found.removed}, **found.seen}
    cursor = json.dumps({"seen": seen, "removed": found.removed}, sort_keys=True)
    requests = [dg.RunRequest(partition_key=k, run_key=f"{k}@{fingerprint_id(seen[k])}",
                              asset_selection=[dg.AssetKey(a) for a in INGEST_ASSETS],
                              tags={"elong/reason": reason})
                for reason, keys in (("new_shard", found.new), ("changed_shard", found.changed))
                for k in keys]
    if found.new or found.changed:
        context.log.info(f"{len(found.new)} new shard(s) {found.new}, {len(found.changed)} "
                         f"changed {found.changed}, {len(found.removed)} removed")
    if not requests:
        return dg.SensorResult(
            skip_reason=f"no new or changed shards among {len(refs)}"
                        + (f"; removed: {', '.join(found.removed)}" if found.removed else ""),
            cursor=cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor,
                           dynamic_partitions_requests=partition_requests(config, found.new))
