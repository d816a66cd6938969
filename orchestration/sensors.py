"""Sensors: corpus shards that appear or change are ingested without anyone asking."""

import json

import dagster as dg

from orchestration.config import load_config
from orchestration.discovery import configured_shards, diff_shards
from orchestration.partitions import SHARDS_PARTITION_NAME, shards_partitions

# The per-shard stage-1 assets: what a new or changed shard makes stale in its own
# partition. Stages that read every shard (the index) or every shard's output (packing,
# catalog) follow through automation conditions and the nightly schedule.
SHARD_ASSETS = ["corpus_shards", "tokenized_docs", "entropy_profiles", "anchors", "chunks",
                "chunk_embeddings"]


def _load_cursor(cursor: str | None) -> dict:
    state = json.loads(cursor) if cursor else {}
    return {"seen": state.get("seen", {}), "removed": state.get("removed", [])}


@dg.sensor(
    name="corpus_shard_sensor",
    asset_selection=dg.AssetSelection.assets(*SHARD_ASSETS),
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches the configured corpus locations. A new shard file becomes a "
                "`corpus/shard` partition and gets a run of its per-shard assets; a shard "
                "whose content hash changed gets the same run again; a shard whose file is "
                "gone is reported (its partition and outputs stay until removed by hand).",
)
def corpus_shard_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    state = _load_cursor(context.cursor)
    refs = configured_shards(load_config())
    known = set(context.instance.get_dynamic_partitions(SHARDS_PARTITION_NAME))
    found = diff_shards(refs, state["seen"], known)
    newly_removed = [k for k in found.removed if k not in state["removed"]]
    for key in newly_removed:
        context.log.warning(f"shard {key}: its file is gone; the partition and its outputs "
                            "are kept until you delete them (dagster UI: Partitions)")
    # Fingerprints of removed shards are kept so a re-appearing file is compared with them.
    seen = {**{k: v for k, v in state["seen"].items() if k in found.removed}, **found.seen}
    cursor = json.dumps({"seen": seen, "removed": found.removed}, sort_keys=True)
    requests = [dg.RunRequest(partition_key=k, run_key=f"{k}@{seen[k]['sha256'][:16]}",
                              asset_selection=[dg.AssetKey(a) for a in SHARD_ASSETS],
                              tags={"elong/reason": reason})
                for reason, keys in (("new_shard", found.new), ("changed_shard", found.changed))
                for k in keys]
    if found.new or found.changed:
        context.log.info(f"{len(found.new)} new shard(s) {found.new}, {len(found.changed)} "
                         f"changed {found.changed}, {len(found.removed)} removed")
    partition_requests = [shards_partitions.build_add_request(found.new)] if found.new else []
    if not requests:
        return dg.SensorResult(
            skip_reason=f"no new or changed shards among {len(refs)}"
                        + (f"; removed: {', '.join(found.removed)}" if found.removed else ""),
            cursor=cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor,
                           dynamic_partitions_requests=partition_requests)
