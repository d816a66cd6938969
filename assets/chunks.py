"""`chunks` and `chunk_embeddings`: the retrieval pool, cut by tokens and embedded."""

import time

import dagster as dg
import numpy as np
import pyarrow as pa

from assets.common import torch_device
from lakehouse import tables
from lakehouse.chunking import chunk_table
from models.embedding import embed_texts
from models.registry import load_embedder, resolve_embedder
from orchestration.automation import FOLLOW_INPUTS
from orchestration.lake_assets import StageContext, lake_asset


@lake_asset(
    partitions="shards", reads={"tokenized_docs": "shard", "corpus_shards": "shard"},
    settings=["chunking"], group="retrieval", kinds=["parquet", "python"],
    automation=FOLLOW_INPUTS,
    description="Every document cut into chunks of at most `chunking.size` tokens, at "
                "sentence ends where possible (all corpora: pool chunks are indexed, a root's "
                "own chunks are what near-duplicate exclusion compares against).",
)
def chunks(ctx: StageContext):
    corpus, shard = ctx.corpus_shard
    cfg = ctx.settings.chunking
    toks = ctx.shard_table("tokenized_docs")
    docs = ctx.shard_table("corpus_shards", ["doc_id", "text"])
    text_of = dict(zip(docs["doc_id"].to_pylist(), docs["text"].to_pylist(), strict=True))
    table = chunk_table(corpus, shard, toks, text_of, cfg.size, cfg.min_size)
    path = ctx.write_shard(table)
    sizes = table["n_tokens"].to_numpy() if table.num_rows else np.zeros(1)
    return dg.MaterializeResult(metadata={
        "chunks": table.num_rows, "docs": toks.num_rows, "mean_tokens": float(sizes.mean()),
        "max_tokens": int(sizes.max()), "dagster/row_count": table.num_rows,
        "path": dg.MetadataValue.path(path)})


@lake_asset(
    partitions="shards", reads={"chunks": "shard"}, settings=["models.embedder"],
    group="retrieval", kinds=["pytorch", "parquet"], automation=FOLLOW_INPUTS,
    description="Unit-norm sentence embeddings of every chunk (the configured embedder).",
)
def chunk_embeddings(ctx: StageContext):
    corpus, _ = ctx.corpus_shard
    settings = ctx.settings
    ch = ctx.shard_table("chunks", ["chunk_id", "doc_id", "text"])
    model = load_embedder(settings.models.embedder, device=torch_device(settings.scoring.device))
    embedder_id = resolve_embedder(settings.models.embedder).model_id
    dim = model.get_embedding_dimension()
    start = time.perf_counter()
    vecs = embed_texts(model, ch["text"].to_pylist())
    rate = len(vecs) / max(time.perf_counter() - start, 1e-9)
    ctx.log.info(f"{ctx.partition_key}: embedded {len(vecs)} chunks ({rate:,.0f}/s)")
    table = pa.Table.from_pydict({
        "chunk_id": ch["chunk_id"], "doc_id": ch["doc_id"], "corpus": [corpus] * ch.num_rows,
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1)), dim),
        "embedder": [embedder_id] * ch.num_rows}, schema=tables.chunk_embeddings_schema(dim))
    path = ctx.write_shard(table)
    return dg.MaterializeResult(metadata={
        "chunks": ch.num_rows, "dim": dim, "embedder": embedder_id, "chunks_per_s": rate,
        "dagster/row_count": ch.num_rows, "path": dg.MetadataValue.path(path)})
