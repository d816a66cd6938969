"""Shard discovery shared by the sensor and the `elong register` command."""

from __future__ import annotations

from lakehouse.corpora import ShardRef, discover_shards
from orchestration.config import PipelineConfig


def configured_shards(config: PipelineConfig) -> list[ShardRef]:
    """Every shard file of every configured corpus, in config then file order."""
    refs: list[ShardRef] = []
    for spec in config.corpus_specs():
        refs.extend(discover_shards(spec))
    return refs


def find_shard(config: PipelineConfig, key: str) -> ShardRef:
    """The shard file behind a partition key, or a clear error if it is gone."""
    corpus, _, shard = key.partition("/")
    spec = config.corpus(corpus)
    for ref in discover_shards(spec):
        if ref.shard == shard:
            return ref
    raise FileNotFoundError(f"partition {key}: no shard file named {shard!r} under {spec.uri} "
                            f"(pattern {spec.pattern})")
