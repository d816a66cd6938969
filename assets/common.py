"""Helpers every per-shard asset shares: its partition, its lake files, its device."""

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from lakehouse.corpora import split_key
from lakehouse.plots import markdown_image
from lakehouse.storage import exists, read_parquet, write_parquet
from orchestration.resources import PipelineResource


def shard_key(context: dg.AssetExecutionContext) -> tuple[str, str]:
    return split_key(context.partition_key)


def read_shard_table(pipeline: PipelineResource, asset: str, corpus: str, shard: str,
                     columns: list[str] | None = None) -> pa.Table:
    """An upstream asset's table for this shard, or a clear error if it was never written."""
    path = pipeline.lake.shard_path(asset, corpus, shard)
    if not exists(path):
        raise FileNotFoundError(f"{path}: upstream asset {asset} has not been materialized "
                                f"for partition {corpus}/{shard}")
    return read_parquet(path, columns=columns)


def write_shard_table(pipeline: PipelineResource, asset: str, corpus: str, shard: str,
                      table: pa.Table) -> str:
    return write_parquet(table, pipeline.lake.shard_path(asset, corpus, shard))


def lake_dataset(pipeline: PipelineResource, *parts: str) -> ds.Dataset:
    """A lake folder (or file) as one Arrow dataset: every corpus and shard together."""
    return ds.dataset(pipeline.lake.path(*parts), format="parquet")


def chunk_tokens(pipeline: PipelineResource, chunk_ids: list[str]) -> dict[str, np.ndarray]:
    """Token ids of the given chunks, wherever in the lake they live."""
    if not chunk_ids:
        return {}
    t = lake_dataset(pipeline, "chunks").to_table(
        columns=["chunk_id", "input_ids"],
        filter=ds.field("chunk_id").isin(pa.array(sorted(set(chunk_ids)), pa.string())))
    return {c: np.asarray(i, np.int64) for c, i in
            zip(t["chunk_id"].to_pylist(), t["input_ids"].to_pylist(), strict=True)}


def torch_device(setting: str) -> str:
    if setting != "auto":
        return setting
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def image(png: bytes, alt: str) -> dg.MetadataValue:
    return dg.MetadataValue.md(markdown_image(png, alt))


def load_configured_scorer(settings):
    """The configured scorer on its device, and the kernel settings to run it with."""
    from models.registry import load_scorer
    from models.scoring import ScoringConfig

    sc = settings.scoring
    model, _ = load_scorer(settings.models.scorer, dtype=sc.dtype,
                           device=torch_device(sc.device))
    window = sc.window or int(model.config.max_position_embeddings)
    return model, ScoringConfig(window=window, overlap=sc.overlap,
                                token_budget=sc.token_budget, block_size=sc.block_size)
