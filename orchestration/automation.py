"""Declarative automation: what re-runs by itself when a corpus changes.

The corpus sensor discovers shards and requests their ingest; every stage below it follows
its inputs (``eager``: when an upstream partition it reads is updated, and once nothing it
reads is missing or in progress). Where an input is lake-wide and recounted with every shard
(the recurring text, the index), the stage follows its data version instead
(``follow_changes``): the recurring units' set, the index's shard versions, a root shard's
anchors file, so a new shard that changes none of them leaves the stage alone. A new pool
shard therefore flows through chunks, embeddings and the index, and since the index
changed, retrieval and verification of the root shards that may now find its chunks (both
incremental: lakehouse.retrieval_state, lakehouse.pass_store), then packing and the
catalog. Training is never automatic: it is a decision, launched by hand (`make
demo-train`, or the UI).
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


def follow_changes(changed: tuple[str, ...], updated: tuple[str, ...] = ()
                   ) -> dg.AutomationCondition:
    """Eager, but the inputs in ``changed`` count only when their data version changed.

    A lake-wide table recounted with every shard (the recurring text) is materialized each
    time, yet its content for a root shard's anchors (which units recur) rarely moves; those
    assets report a data version of what their readers use, and a stage following them by
    this condition runs when that changed, not on every materialization. ``updated``:
    inputs followed on every materialization, as with ``follow_only``. A changed input
    requested in the same tick is waited for (any input in progress holds the stage), then
    judged by its new data version on the next tick.
    """
    cond = dg.AutomationCondition
    others = dg.AssetSelection.all() - dg.AssetSelection.assets(*changed, *updated)
    trigger = cond.any_deps_match(cond.data_version_changed()).ignore(
        others | dg.AssetSelection.assets(*updated))
    if updated:
        trigger = trigger | cond.any_deps_updated().ignore(
            others | dg.AssetSelection.assets(*changed))
    external = dg.AssetSelection.assets(PLANTED_GROUND_TRUTH)
    return (cond.in_latest_time_window()
            & (cond.newly_missing() | trigger).since_last_handled()
            & ~cond.any_deps_missing().ignore(external)
            & ~cond.any_deps_in_progress()
            & ~cond.in_progress()).with_label("follow changed data")


# Running by default: the docs promise that a new shard flows through by itself.
automation_sensor = dg.AutomationConditionSensorDefinition(
    "default_automation_condition_sensor", target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
    description="Evaluates every asset's automation condition (eager: follow the inputs).")
