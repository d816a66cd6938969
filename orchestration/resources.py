"""Resources: the pipeline configuration and the lake it describes."""

from __future__ import annotations

from functools import cached_property

import dagster as dg

from lakehouse.storage import Lake
from orchestration.config import PipelineConfig, load_config


class PipelineResource(dg.ConfigurableResource):
    """The parsed ``pipeline.yaml`` (``config_path`` empty: ``$ELONG_CONFIG`` or the default)."""

    config_path: str = ""

    @cached_property
    def settings(self) -> PipelineConfig:
        return load_config(self.config_path or None)

    @property
    def lake(self) -> Lake:
        return self.settings.lake_store
