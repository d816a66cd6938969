"""Sensors: new corpus shards become partitions and are ingested without anyone asking."""

import dagster as dg

from orchestration.config import load_config
from orchestration.discovery import configured_shards
from orchestration.partitions import SHARDS_PARTITION_NAME, shards_partitions


@dg.sensor(
    name="corpus_shard_sensor",
    asset_selection=dg.AssetSelection.assets("corpus_shards"),
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches the configured corpus locations; each new shard file becomes a "
                "`corpus/shard` partition and gets an ingest run.",
)
def corpus_shard_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    refs = configured_shards(load_config())
    known = set(context.instance.get_dynamic_partitions(SHARDS_PARTITION_NAME))
    new = [r.key for r in refs if r.key not in known]
    if not new:
        return dg.SensorResult(skip_reason=f"no new shards among {len(refs)}")
    context.log.info(f"{len(new)} new shard(s): {', '.join(new)}")
    return dg.SensorResult(
        dynamic_partitions_requests=[shards_partitions.build_add_request(new)],
        run_requests=[dg.RunRequest(partition_key=k, run_key=f"ingest:{k}") for k in new],
    )
