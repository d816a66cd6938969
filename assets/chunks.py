"""`chunks` and `chunk_embeddings`: the retrieval pool, cut by tokens and embedded."""

import time

import dagster as dg
import numpy as np
import pyarrow as pa

from assets.common import read_shard_table, shard_key, torch_device, write_shard_table
from lakehouse import tables
from lakehouse.anchors import span_text
from lakehouse.chunking import chunk_spans, sentence_ends
from lakehouse.ids import chunk_id
from models.embedding import embed_texts
from models.registry import load_embedder, resolve_embedder
from orchestration.k8s import op_tags
from orchestration.partitions import PER_SHARD_BACKFILL, shards_partitions
from orchestration.resources import PipelineResource


@dg.asset(
    op_tags=op_tags("cpu"),
    partitions_def=shards_partitions, backfill_policy=PER_SHARD_BACKFILL,
    deps=["tokenized_docs"], group_name="retrieval",
    kinds={"parquet", "python"},
    description="Every document cut into chunks of at most `chunking.size` tokens, at "
                "sentence ends where possible (all corpora: pool chunks are indexed, a root's "
                "own chunks are what near-duplicate exclusion compares against).",
)
def chunks(context: dg.AssetExecutionContext, pipeline: PipelineResource):
    corpus, shard = shard_key(context)
    cfg = pipeline.settings.chunking
    toks = read_shard_table(pipeline, "tokenized_docs", corpus, shard)
    docs = read_shard_table(pipeline, "corpus_shards", corpus, shard, ["doc_id", "text"])
    text_of = dict(zip(docs["doc_id"].to_pylist(), docs["text"].to_pylist(), strict=True))
    rows: list[dict] = []
    for doc_id, ids, cs, ce in zip(*(toks[c].to_pylist() for c in
                                     ("doc_id", "input_ids", "char_start", "char_end")),
                                   strict=True):
        text = text_of[doc_id]
        starts, ends = np.asarray(cs, np.int64), np.asarray(ce, np.int64)
        spans = chunk_spans(len(ids), sentence_ends(text, ends), cfg.size, cfg.min_size)
        for i, (a, b) in enumerate(spans):
            rows.append({"chunk_id": chunk_id(doc_id, a, b), "doc_id": doc_id,
                         "corpus": corpus, "shard": shard, "chunk_index": i,
                         "token_start": a, "token_end": b, "n_tokens": b - a,
                         "text": span_text(text, starts, ends, a, b),
                         "input_ids": ids[a:b]})
    table = tables.from_rows(rows, tables.CHUNKS)
    path = write_shard_table(pipeline, "chunks", corpus, shard, table)
    sizes = np.array([r["n_tokens"] for r in rows]) if rows else np.zeros(1)
    return dg.MaterializeResult(metadata={
        "chunks": len(rows), "docs": toks.num_rows, "mean_tokens": float(sizes.mean()),
        "max_tokens": int(sizes.max()), "dagster/row_count": len(rows),
        "path": dg.MetadataValue.path(path)})


@dg.asset(
    op_tags=op_tags("cpu"),
    partitions_def=shards_partitions, backfill_policy=PER_SHARD_BACKFILL,
    deps=["chunks"], group_name="retrieval",
    kinds={"pytorch", "parquet"},
    description="Unit-norm sentence embeddings of every chunk (the configured embedder).",
)
def chunk_embeddings(context: dg.AssetExecutionContext, pipeline: PipelineResource):
    corpus, shard = shard_key(context)
    settings = pipeline.settings
    ch = read_shard_table(pipeline, "chunks", corpus, shard, ["chunk_id", "doc_id", "text"])
    model = load_embedder(settings.models.embedder,
                          device=torch_device(settings.scoring.device))
    embedder_id = resolve_embedder(settings.models.embedder).model_id
    dim = model.get_embedding_dimension()
    start = time.perf_counter()
    vecs = embed_texts(model, ch["text"].to_pylist())
    rate = len(vecs) / max(time.perf_counter() - start, 1e-9)
    context.log.info(f"{context.partition_key}: embedded {len(vecs)} chunks ({rate:,.0f}/s)")
    schema = tables.chunk_embeddings_schema(dim)
    table = pa.Table.from_pydict({
        "chunk_id": ch["chunk_id"], "doc_id": ch["doc_id"],
        "corpus": [corpus] * ch.num_rows,
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1)), dim),
        "embedder": [embedder_id] * ch.num_rows}, schema=schema)
    path = write_shard_table(pipeline, "chunk_embeddings", corpus, shard, table)
    return dg.MaterializeResult(metadata={
        "chunks": ch.num_rows, "dim": dim, "embedder": embedder_id,
        "chunks_per_s": rate, "dagster/row_count": ch.num_rows,
        "path": dg.MetadataValue.path(path)})
