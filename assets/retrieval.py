"""`vector_index` and `retrieval_candidates`: EntropyLong step 2."""

import hashlib
import json
import time

import dagster as dg
import numpy as np
import pyarrow as pa

from assets.common import image, torch_device
from assets.recurring import recurring_set
from lakehouse import retrieval_state
from lakehouse.corpora import file_sha256
from lakehouse.object_store import lance_storage_options
from lakehouse.plots import histogram_png
from lakehouse.recurring import indexable
from lakehouse.retrieval import retrieve
from lakehouse.storage import atomic_write_bytes, exists, glob, read_bytes, read_parquet
from lakehouse.vector_index import VectorIndex
from models.embedding import embed_texts
from models.registry import load_embedder
from orchestration.automation import follow_changes, follow_only
from orchestration.config import PipelineConfig
from orchestration.lake_assets import StageContext, lake_asset
from orchestration.partitions import TRANSIENT_RETRY

NO_SELF_CHECK = "no_self_candidates"
MASKS_FILE = "shard_masks.json"  # per pool shard: which of its chunks recurring text leaves out


def shard_versions(files: dict[str, str], texts: dict[str, str], recurring: set[int],
                   rsettings, rdigest: str, masks: dict[str, dict]) -> dict[str, str]:
    """Each pool shard's version in the index: its embeddings file's hash and which of its
    chunks the recurring text leaves out (``masks``: the cache of that, updated in place).

    The lake's recurring text is recounted with every new shard, but a recount changes the
    chunks of few shards; a version that held the recurring set's own hash would re-version
    every shard in the index with every shard added (and so re-load the index and re-search
    every root). The left-out mask of a shard is recomputed (one read of its chunk text, no
    embedding) only when its embeddings or the recurring set changed since it was cached.
    """
    out = {}
    for key, path in files.items():
        emb = file_sha256(path)[0]
        cached = masks.get(key, {})
        if cached.get("emb") != emb or cached.get("recurring") != rdigest:
            text = read_parquet(texts[key], ["text"])["text"].to_pylist()
            left = np.flatnonzero(~indexable(text, recurring, rsettings)).tolist()
            cached = {"emb": emb, "recurring": rdigest,
                      "mask": hashlib.sha256(json.dumps(left).encode()).hexdigest()[:16]}
            masks[key] = cached
        out[key] = f"{emb}:{cached['mask']}"
    return out


def open_index(settings: PipelineConfig, uri: str, dim: int) -> VectorIndex:
    """The configured LanceDB index at ``uri`` (the asset's lake folder, local or s3://)."""
    return VectorIndex(uri, dim, settings.index, storage_options=lance_storage_options(uri))


def _pool_files(folder: str, pool: set[str]) -> dict[str, str]:
    """Partition key -> file of every pool corpus's shard below ``folder`` (any fsspec URL)."""
    files = {}
    for path in glob(f"{folder.rstrip('/')}/*/*.parquet"):
        corpus, name = path.rsplit("/", 2)[-2:]
        if corpus in pool:
            files[f"{corpus}/{name.removesuffix('.parquet')}"] = path
    return dict(sorted(files.items()))


@lake_asset(
    reads={"chunk_embeddings": "all", "chunks": "all", "recurring_text": "all"},
    settings=["index", "recurring"], group="retrieval",
    kinds=["lancedb"], pool="lancedb_writer", retry=TRANSIENT_RETRY,
    automation=follow_only("chunk_embeddings", "recurring_text"),
    description="LanceDB table of the pool's chunks, their vectors under an ANN index "
                "(`index.kind`, HNSW-SQ by default; exact below `index.exact_below` rows) and "
                "their text under a BM25 full-text index; chunks made (`recurring."
                "max_chunk_share`) of recurring text are left out; kept in step with the lake "
                "shard by shard (adds new, replaces changed, drops removed).",
)
def vector_index(ctx: StageContext):
    pool = {c.name for c in ctx.settings.corpora if "pool" in c.roles}
    files = _pool_files(ctx.input_path("chunk_embeddings"), pool)
    texts = _pool_files(ctx.input_path("chunks"), pool)
    recurring = recurring_set(ctx)
    rsettings = ctx.settings.recurring
    rdigest = hashlib.sha256(json.dumps([sorted(recurring), rsettings.model_dump()]).encode()
                             ).hexdigest()[:16]
    cache_path = ctx.output_path(MASKS_FILE)
    masks = json.loads(read_bytes(cache_path)) if exists(cache_path) else {}
    wanted = shard_versions(files, texts, recurring, rsettings, rdigest, masks)
    atomic_write_bytes(cache_path, lambda fh: fh.write(json.dumps(
        {k: masks[k] for k in sorted(wanted)}, sort_keys=True).encode()))
    left_out: dict[str, int] = {}
    dim = 384
    if files:
        dim = read_parquet(next(iter(files.values())), ["vector"]).schema.field(
            "vector").type.list_size

    def load(key: str):
        emb = read_parquet(files[key], ["chunk_id", "doc_id", "corpus", "vector"])
        text = read_parquet(texts[key], ["chunk_id", "text"])
        if emb["chunk_id"] != text["chunk_id"]:
            raise ValueError(f"{key}: chunk_embeddings and chunks disagree on the chunks "
                             "(re-materialize chunk_embeddings for this shard)")
        keep = indexable(text["text"].to_pylist(), recurring, rsettings)
        left_out[key] = int((~keep).sum())
        return emb.append_column("text", text["text"]).filter(pa.array(keep))

    index = open_index(ctx.settings, ctx.output_path(), dim)
    start = time.perf_counter()
    report = index.sync(wanted, load)
    ctx.log.info(f"index: +{len(report.added)} ~{len(report.replaced)} -{len(report.removed)} "
                 f"shards, {report.rows} rows, {report.index} "
                 f"({time.perf_counter() - start:.1f} s); {sum(left_out.values())} chunks of "
                 f"recurring text left out of the shards loaded")
    version = hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:16]
    return dg.MaterializeResult(data_version=dg.DataVersion(version), metadata={
        "rows": report.rows, "shards": len(wanted), "index": report.index,
        "recurring_chunks_left_out": sum(left_out.values()),
        "left_out_by_shard": dg.MetadataValue.json(left_out),
        "added": dg.MetadataValue.json(report.added),
        "replaced": dg.MetadataValue.json(report.replaced),
        "removed": dg.MetadataValue.json(report.removed), "full_text_s": report.fts_s,
        "dagster/row_count": report.rows, "uri": dg.MetadataValue.path(index.uri)})


@lake_asset(
    partitions="root_shards", settings=["retrieval", "models.embedder"], group="retrieval",
    reads={"anchors": "shard", "chunk_embeddings": "shard", "vector_index": "all",
           "corpus_shards": "shard"},
    kinds=["lancedb", "parquet"], retry=TRANSIENT_RETRY,
    automation=follow_changes(("anchors", "vector_index")),
    checks=[(NO_SELF_CHECK, "no candidate comes from its root document", True)],
    description="Top-K pool chunks for every anchor query (`retrieval.mode`: dense, lexical "
                "or both fused by reciprocal rank; lexical queries carry the window's rarest "
                "words and the root document's `context_terms` rarest), at most `per_doc` "
                "per pool document, near-copies collapsed, the root's own chunks and its "
                "near-duplicates excluded; each drop counted. Searches are stored (`_state/`): "
                "after a pool change only the added shards are searched and merged in "
                "(`retrieval.refresh`).",
)
def retrieval_candidates(ctx: StageContext):
    settings = ctx.settings
    cfg = settings.retrieval
    anc = ctx.shard_table("anchors")
    own = ctx.shard_table("chunk_embeddings", ["doc_id", "chunk_id", "vector"])
    index = open_index(settings, ctx.input_path("vector_index"),
                       own.schema.field("vector").type.list_size)
    qvecs = None
    if cfg.mode != "lexical" and anc.num_rows:
        queries = anc["query"].to_pylist()
        unique = sorted(set(queries))
        model = load_embedder(settings.models.embedder,
                              device=torch_device(settings.scoring.device))
        vecs = embed_texts(model, unique, batch_size=cfg.batch_size)
        row_of = {q: i for i, q in enumerate(unique)}
        qvecs = vecs[[row_of[q] for q in queries]]
    # the roots' rarest words join their lexical queries (retrieval.context_terms)
    docs = ctx.shard_table("corpus_shards", ["doc_id", "text"])
    root_texts = dict(zip(docs["doc_id"].to_pylist(), docs["text"].to_pylist(), strict=True))
    corpus, shard = ctx.corpus_shard
    state_path = ctx.output_path("_state", corpus, f"{shard}.parquet")
    dim = own.schema.field("vector").type.list_size
    up, state = retrieval_state.update(
        retrieval_state.load(state_path, dim), anc, qvecs, own, index, cfg, root_texts,
        settings.models.embedder)
    table, stats = retrieve(anc, qvecs, own, index, cfg, root_texts, searched=up.searched)
    retrieval_state.save(state, state_path)  # before the table: a kill in between is redone
    path = ctx.write_shard(table)
    ctx.log.info(f"{ctx.partition_key}: {up.kind} search ({up.reason})")
    ctx.log.info(f"{ctx.partition_key}: {stats['anchors']} anchors ({stats['distinct_queries']} "
                 f"distinct queries, {cfg.mode}) -> {stats['candidates']} candidates, "
                 f"{stats['queries_per_s']:,.0f} queries/s")
    meta = {k: v for k, v in stats.items() if isinstance(v, int | float | str) and k != "sample"}
    meta.update({"search": up.kind, "search_reason": up.reason,
                 "shards_searched": dg.MetadataValue.json(up.added),
                 "shards_dropped": dg.MetadataValue.json(up.removed),
                 "lists_researched": up.lists_researched})
    meta.update({"candidates_found_by": dg.MetadataValue.json(stats["candidates_found_by"]),
                 "sample": dg.MetadataValue.md(stats["sample"] or "(no anchors)"),
                 "index": index.index_kind(), "dagster/row_count": table.num_rows,
                 "path": dg.MetadataValue.path(path)})
    scores = table["score"].to_numpy(zero_copy_only=False).astype(np.float32)
    finite = scores[np.isfinite(scores)]
    if finite.size:
        meta["score_histogram"] = image(histogram_png(
            finite, f"{ctx.partition_key}: query-chunk cosine", "cosine similarity"),
            "retrieval scores")
    yield dg.MaterializeResult(metadata=meta)
    self_hits = sum(1 for d, c in zip(table["doc_id"].to_pylist(),
                                      table["chunk_doc_id"].to_pylist(), strict=True) if d == c)
    yield dg.AssetCheckResult(check_name=NO_SELF_CHECK, passed=self_hits == 0,
                              metadata={"self_candidates": self_hits})
