"""The nightly schedule: rebuild what reads every shard, once the day's shards are in.

Per-shard stages follow new and changed shards through the sensor (stage 1) and automation
conditions on the assets (index, retrieval, verification); the packed datasets and the
catalog read every shard's output, so they are rebuilt once a night rather than after each.
"""

import dagster as dg

NIGHTLY_CRON = "0 4 * * *"

nightly_packing_job = dg.define_asset_job(
    "nightly_packing",
    selection=dg.AssetSelection.assets("packed_dataset", "baseline_dataset", "stats_catalog"),
    description="Repack EntropyLong and baseline datasets from every shard's verified "
                "dependencies, then refresh the DuckDB catalog.",
)

nightly_packing_schedule = dg.ScheduleDefinition(
    name="nightly_packing_schedule", job=nightly_packing_job, cron_schedule=NIGHTLY_CRON,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="04:00 every night, after the 02:00 automation of retrieval and verification.",
)
