"""Declarative automation: what re-runs by itself when a corpus changes.

The corpus sensor discovers shards and requests their ingest; every stage below it follows
its inputs (``eager``: when an upstream partition it reads is updated, and once nothing it
reads is missing or in progress). A new pool shard therefore flows through chunks,
embeddings and the index, and since the index changed, retrieval and verification of the
root shards that may now find its chunks, then packing and the catalog. Training is never
automatic: it is a decision, launched by hand (`make demo-train`, or the UI).
"""

import dagster as dg

from orchestration.lake_assets import PLANTED_GROUND_TRUTH

# External inputs are never materialized by Dagster: they must not count as missing.
FOLLOW_INPUTS = dg.AutomationCondition.eager().ignore(
    dg.AssetSelection.assets(PLANTED_GROUND_TRUTH))



def follow_only(*inputs: str) -> dg.AutomationCondition:
    """Eager on some inputs only. A stage that reads a table only to look things up in it
    (verification reads chunk tokens; packing reads root tokens) would otherwise run once
    for that table's update and again when its real driver (the candidates, the verified
    rows), which follows the same update, lands."""
    return dg.AutomationCondition.eager().ignore(
        (dg.AssetSelection.all() - dg.AssetSelection.assets(*inputs))
        | dg.AssetSelection.assets(PLANTED_GROUND_TRUTH))


# Running by default: the docs promise that a new shard flows through by itself.
automation_sensor = dg.AutomationConditionSensorDefinition(
    "default_automation_condition_sensor", target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
    description="Evaluates every asset's automation condition (eager: follow the inputs).")
