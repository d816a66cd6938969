"""The Dagster code location: `dg dev`, `dg launch` and `dg check defs` load this.

The definitions are built when the code location loads (``@dg.definitions``), from the
configuration file named by ``$ELONG_CONFIG`` (or the project's pipeline.yaml): importing
this module reads nothing. Tests build them for their own config with
:func:`build_definitions`.
"""

from __future__ import annotations

import dagster as dg

import assets  # noqa: F401  (registers every lake asset)
from orchestration.automation import automation_sensor
from orchestration.config import load_config
from orchestration.jobs import asset_jobs
from orchestration.k8s import executor
from orchestration.lake_assets import build_assets
from orchestration.resources import PipelineResource
from orchestration.sensors import corpus_shard_sensor


def build_definitions(config_path: str | None = None) -> dg.Definitions:
    """Assets (versioned by their settings), jobs, sensors and executor for one config."""
    config = load_config(config_path)
    return dg.Definitions(
        assets=build_assets(config),
        jobs=asset_jobs(),
        sensors=[corpus_shard_sensor, automation_sensor],
        resources={"pipeline": PipelineResource(config_path=config_path or "")},
        executor=executor(config.kubernetes),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
