"""Retrieval benchmarks: index speed (synthetic vectors) and planted recall (real text).

``python -m bench.retrieval [speed|planted|all]`` (default all).

Planted mode (``planted_main``): does retrieval find the true source of a planted fact in a
pool that grows? The realistic planted corpus (lakehouse.demo.realistic: 24 roots, their
sources and same-topic distractors in one corpus, 96 fact spans) plus a look-alike pool
(same template families with other invented entities, a quarter unrelated prose), chunked
as the pipeline does (SmolLM2 tokenizer, 256 tokens at sentence ends) and embedded with
MiniLM, at about 1K, 10K and 100K chunks. Oracle anchors: one query per fact span, the
paper's window of tokens [t-16, t+16) around its first token; the root's own chunks (and
near-copies of them) excluded, as the pipeline excludes them. Per retrieval mode and pool
size: recall@K (K = 8) of the true source per fact span and per root (a root counts when
any of its spans finds its source), queries per second of the whole retrieval stage
(``lakehouse.retrieval.retrieve``: search, fusion, filters), and index build time with both
indexes against the vector index alone. The baseline is dense retrieval alone, as the
pipeline had it (no per-document or candidate limits). Embeddings are cached under
.cache/bench/retrieval by a hash of each chunk's text (embedding 100K chunks takes about 10
minutes on 2 CPU cores; a rerun reads them in seconds, and the smaller pools reuse them).

Speed mode (``main_speed``): each LanceDB ANN index kind against exact search, at 200K
vectors of MiniLM's dimension.

Exact search is the strongest plain alternative: one batched matrix product per block of
queries (numpy, BLAS) and a partial sort. The index is asked through ``VectorIndex.search``,
as the retrieval asset asks it (hits with their stored vectors, for near-duplicate
exclusion, sorted and split per query), with the parameters it derives from the row count.
Both answer the same queries; recall@10 is the overlap of the index's top 10 with the exact
top 10.

The vectors are synthetic, drawn to have the structure of sentence embeddings (a few
thousand topics in a 48-dimensional subspace, projected to 384 dimensions, plus noise, unit
norm), because embedding 200K real chunks with MiniLM would take 20 minutes on 2 CPU cores.
Uniform random vectors would be a worst case no ANN index is built for; real embeddings sit
near a low-dimensional manifold like these. Queries are perturbed copies of stored vectors,
as anchor windows are near the chunks that contain them.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from bench.common import Record, device_name, report
from lakehouse.vector_index import ANN_KINDS, Hits, IndexParams, VectorIndex, ann_plan


def synthetic(n: int, dim: int, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    latent = 48
    topics = rng.normal(size=(max(n // 100, 10), latent)).astype(np.float32)
    z = topics[rng.integers(0, len(topics), n)] + 0.5 * rng.normal(size=(n, latent))
    proj = rng.normal(size=(latent, dim)).astype(np.float32)
    x = (z.astype(np.float32) @ proj) + 0.3 * rng.normal(size=(n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[rng.integers(0, n, n_queries)] + 0.02 * rng.normal(size=(n_queries, dim))
    q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    return x.astype(np.float32), q


def exact_topk(x: np.ndarray, q: np.ndarray, k: int, block: int = 512) -> np.ndarray:
    out = []
    for lo in range(0, len(q), block):
        sims = q[lo:lo + block] @ x.T
        out.append(np.argpartition(-sims, k - 1, axis=1)[:, :k])
    return np.concatenate(out)


def _shard(x: np.ndarray, offset: int) -> pa.Table:
    ids = [str(i) for i in range(offset, offset + len(x))]
    return pa.table({"chunk_id": ids, "doc_id": ids, "corpus": ["bench"] * len(x),
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()),
                                                                 x.shape[1])})


def _timed_search(index: VectorIndex, q: np.ndarray, k: int, truth: np.ndarray
                  ) -> tuple[float, float]:
    """(seconds for all queries, recall@k against ``truth``)."""
    index.search(q[:64], k)  # warm-up: loads the index
    start = time.perf_counter()
    hits = index.search(q, k, batch=500, with_vectors=True)
    elapsed = time.perf_counter() - start
    recall = float(np.mean([len({int(c) for c in h.chunk_ids} & set(t.tolist())) / k
                            for h, t in zip(hits, truth, strict=True)]))
    return elapsed, recall


def time_kind(kind: str, x: np.ndarray, extra: np.ndarray, q: np.ndarray, k: int,
              truth: np.ndarray, truth_after: np.ndarray) -> dict:
    """Search time and recall of one index kind, trained on ``x``, then after a sync that
    adds ``extra`` as a second shard (how new corpus shards arrive)."""
    n, dim = x.shape
    params = IndexParams(kind=kind, exact_below=50_000, fts=False)  # vectors only here
    shards = {"bench/0": _shard(x, 0), "bench/1": _shard(extra, n)}
    with tempfile.TemporaryDirectory() as tmp:
        index = VectorIndex(tmp, dim, params)
        start = time.perf_counter()
        sync = index.sync({"bench/0": "v1"}, shards.__getitem__)
        t_build = time.perf_counter() - start
        assert sync.index == kind, sync
        t_ann, recall = _timed_search(index, q, k, truth)
        start = time.perf_counter()
        index.sync({"bench/0": "v1", "bench/1": "v1"}, shards.__getitem__)
        t_add = time.perf_counter() - start
        t_after, recall_after = _timed_search(index, q, k, truth_after)
    plan = ann_plan(n, dim, params)
    return {"t": t_ann, "recall": recall, "t_after": t_after, "recall_after": recall_after,
            "info": {"num_partitions": plan.num_partitions, "nprobes": plan.nprobes,
                     "num_sub_vectors": plan.num_sub_vectors, "ef": plan.ef(k, params),
                     "refine_factor": plan.refine_factor, "index_build_s": round(t_build, 1),
                     "add_sync_s": round(t_add, 1), "added_rows": len(extra)}}


def main_speed(n: int = 200_000, dim: int = 384, n_queries: int = 2000, k: int = 10
               ) -> list[Record]:
    allx, q = synthetic(n + n // 10, dim, n_queries)
    x, extra = allx[:n], allx[n:]
    exact_topk(x, q[:64], k)  # warm-up
    start = time.perf_counter()
    truth = exact_topk(x, q, k)
    t_exact = time.perf_counter() - start
    truth_after = exact_topk(allx, q, k)
    qps_exact = n_queries / t_exact
    records = []
    for kind in ANN_KINDS:
        r = time_kind(kind, x, extra, q, k, truth, truth_after)
        common = {"vectors": n, "dim": dim, "queries": n_queries, "k": k, **r["info"]}
        for label, t, recall in (("", r["t"], r["recall"]),
                                 (" after +10% rows", r["t_after"], r["recall_after"])):
            qps = n_queries / t
            records.append(Record(f"queries/s, {kind}{label} / exact numpy", qps, qps_exact,
                                  qps / qps_exact, "queries/s", "ratio >= 5",
                                  qps / qps_exact >= 5, device_name(), common))
            records.append(Record(f"recall@10, {kind}{label}", recall, 1.0, recall,
                                  "fraction", ">= 0.95", recall >= 0.95, device_name(),
                                  common))
    return records


# -- planted mode ------------------------------------------------------------------------

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "bench" / "retrieval"
SIZES = (1_000, 10_000, 100_000)  # pool sizes in chunks (planted corpus included)
PLANTED_CORPUS = "realistic"
LOOKALIKE_CORPUS = "realistic-lookalike"


@dataclass(frozen=True)
class PoolSpec:
    """What the planted pool is made of (every setting goes into the cache key)."""

    seed: int = 0
    chunks: int = 1_000  # pool size in chunks: look-alike documents are added until reached
    unrelated: float = 0.25  # share of look-alike documents that are prose of other topics
    boilerplate: float = 0.2  # share of recurring sentences and lines
    block: int = 2_000  # look-alike documents per shard (and per cached embedding file)
    chunk_size: int = 256  # tokens per chunk, cut at sentence ends (the pipeline's default)
    window: int = 16  # oracle query: tokens [t - window, t + window)


@dataclass
class Pool:
    chunks: pa.Table  # chunk_id, doc_id, corpus, text, vector, shard_key
    truth: list[dict]  # GROUND_TRUTH rows of the planted corpus
    anchors: pa.Table  # oracle anchors: doc_id, position, query, anchor_word, source_doc_id
    query_vectors: np.ndarray
    own: pa.Table  # the roots' own chunks (doc_id, vector)
    root_texts: dict[str, str] = field(default_factory=dict)
    shards: dict[str, pa.Table] = field(default_factory=dict)
    embed_s: float = 0.0  # seconds spent embedding (0 when all came from the cache)
    cached: int = 0  # chunks whose embeddings came from the cache


def _chunk_docs(tokenizer, corpus: str, docs: Sequence, chunk_size: int
                ) -> tuple[list[dict], dict[str, tuple]]:
    """The pipeline's chunking (lakehouse.chunking); also each document's token offsets."""
    from lakehouse.anchors import span_text
    from lakehouse.chunking import chunk_spans, sentence_ends
    from lakehouse.ids import chunk_id, doc_id
    from models.tokenize import tokenize_texts

    toks = tokenize_texts(tokenizer, [d.text for d in docs])
    rows, offsets = [], {}
    for d, t in zip(docs, toks, strict=True):
        did = doc_id(corpus, d.source_id, d.text)
        offsets[did] = (d.text, t.char_start, t.char_end)
        for a, b in chunk_spans(len(t.input_ids), sentence_ends(d.text, t.char_end),
                                chunk_size):
            rows.append({"chunk_id": chunk_id(did, a, b), "doc_id": did, "corpus": corpus,
                         "text": span_text(d.text, t.char_start, t.char_end, a, b),
                         "role": d.role})
    return rows, offsets


_CACHE_INDEX: dict[str, dict[str, np.ndarray]] = {}  # embedder id -> text hash -> vector


def _cache_index(embedder_id: str) -> dict[str, np.ndarray]:
    """Every cached embedding of this embedder (files ``<embedder hash>-*.npz``)."""
    if embedder_id not in _CACHE_INDEX:
        prefix = hashlib.sha256(embedder_id.encode()).hexdigest()[:12]
        index: dict[str, np.ndarray] = {}
        for path in sorted(CACHE.glob(f"{prefix}-*.npz")):
            if path.name.endswith(".tmp.npz"):  # a write that was cut short
                continue
            with np.load(path) as f:
                index.update(zip(f["keys"].tolist(), f["vectors"], strict=True))
        _CACHE_INDEX[embedder_id] = index
    return _CACHE_INDEX[embedder_id]


def _embed_cached(rows: list[dict], embed: Callable[[list[str]], np.ndarray], embedder_id: str
                  ) -> tuple[np.ndarray, float, bool]:
    """Embeddings of the rows' texts; each text is looked up by its hash in
    .cache/bench/retrieval, and only the missing ones are embedded (and added there).
    Returns (vectors, seconds spent embedding, whether all came from the cache)."""
    texts = [r["text"] for r in rows]
    keys = [hashlib.sha1(t.encode()).hexdigest() for t in texts]
    index = _cache_index(embedder_id)
    missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in index}.items())
    elapsed = 0.0
    if missing:
        start = time.perf_counter()
        vecs = embed([t for _, t in missing]).astype(np.float32)
        elapsed = time.perf_counter() - start
        new_keys = np.array([k for k, _ in missing])
        index.update(zip(new_keys.tolist(), vecs, strict=True))
        CACHE.mkdir(parents=True, exist_ok=True)
        prefix = hashlib.sha256(embedder_id.encode()).hexdigest()[:12]
        name = hashlib.sha1("".join(new_keys.tolist()).encode()).hexdigest()[:16]
        tmp = CACHE / f"{prefix}-{name}.tmp.npz"
        np.savez(tmp, keys=new_keys, vectors=vecs)
        tmp.rename(CACHE / f"{prefix}-{name}.npz")
    out = np.stack([index[k] for k in keys]) if keys else np.zeros((0, 384), np.float32)
    return out.astype(np.float32), elapsed, not missing


def _table(rows: list[dict], vecs: np.ndarray, shard: str) -> pa.Table:
    dim = vecs.shape[1]
    return pa.table({"chunk_id": [r["chunk_id"] for r in rows],
                     "doc_id": [r["doc_id"] for r in rows],
                     "corpus": [r["corpus"] for r in rows],
                     "text": pa.array([r["text"] for r in rows], pa.large_string()),
                     "vector": pa.FixedSizeListArray.from_arrays(
                         pa.array(vecs.astype(np.float32).ravel()), dim),
                     "shard_key": [shard] * len(rows)})


def oracle_anchors(truth: list[dict], offsets: dict[str, tuple], window: int) -> pa.Table:
    """One anchor per planted fact span: its first token, the window around it as query."""
    from lakehouse.anchors import query_span, span_text
    from lakehouse.planted_eval import planted_token_spans
    from lakehouse.retrieval import anchor_word

    spans = planted_token_spans(truth, {d: (o[1], o[2]) for d, o in offsets.items()})
    cols: dict[str, list] = {"doc_id": [], "position": [], "query": [], "anchor_word": [],
                             "source_doc_id": [], "kind": []}
    for s in spans:
        text, cs, ce = offsets[s.root_doc_id]
        lo, hi = query_span(s.token_start, len(cs), window, "symmetric")
        cols["doc_id"].append(s.root_doc_id)
        cols["position"].append(s.token_start)
        cols["query"].append(span_text(text, cs, ce, lo, hi))
        cols["anchor_word"].append(anchor_word(text, cs, ce, s.token_start))
        cols["source_doc_id"].append(s.source_doc_id)
        cols["kind"].append(s.kind)
    return pa.table(cols)


@dataclass
class PoolChunks:
    """The planted pool before embedding: chunk rows per shard, ground truth, oracle anchors."""

    shards: dict[str, list[dict]]  # shard key -> rows (chunk_id, doc_id, corpus, text, role)
    truth: list[dict]
    anchors: pa.Table
    root_texts: dict[str, str]  # doc_id -> text of each root


def pool_chunks(spec: PoolSpec, tokenizer) -> PoolChunks:
    """The planted corpus (one shard) plus look-alike shards of ``spec.block`` documents
    until ``spec.chunks`` chunks (the last one cut at a document boundary).

    Look-alike document i does not depend on how many are drawn, so the pools of the three
    sizes nest and share cached embeddings.
    """
    from lakehouse.demo.realistic import generate, lookalike_docs

    docs, truth = generate(spec.seed, boilerplate=spec.boilerplate, corpus=PLANTED_CORPUS)
    rows, offsets = _chunk_docs(tokenizer, PLANTED_CORPUS, docs, spec.chunk_size)
    shards = {f"{PLANTED_CORPUS}/0": rows}
    total = len(rows)
    avoid = {t["surface"] for t in truth}
    lookalikes: list = []
    b = 0
    while total < spec.chunks:
        if len(lookalikes) < (b + 1) * spec.block:
            # about 1.5 chunks a document: draw a little more than the rest needs (drawing
            # more keeps the same prefix; the generator slows down as its name space fills,
            # so never draw far ahead)
            n_docs = max((b + 1) * spec.block, len(lookalikes) + int((spec.chunks - total) / 1.3))
            lookalikes = lookalike_docs(spec.seed, n_docs, unrelated=spec.unrelated,
                                        boilerplate=spec.boilerplate, avoid=avoid)
        block = lookalikes[b * spec.block:(b + 1) * spec.block]
        brows, _ = _chunk_docs(tokenizer, LOOKALIKE_CORPUS, block, spec.chunk_size)
        need = spec.chunks - total
        if len(brows) > need:  # cut at a document boundary once the target is reached
            cut = need
            while cut < len(brows) and brows[cut]["doc_id"] == brows[need - 1]["doc_id"]:
                cut += 1
            brows = brows[:cut]
        shards[f"{LOOKALIKE_CORPUS}/{b:03d}"] = brows
        total += len(brows)
        b += 1
    roots = {t["root_doc_id"] for t in truth}
    return PoolChunks(shards, truth, oracle_anchors(truth, offsets, spec.window),
                      {d: offsets[d][0] for d in sorted(roots)})


def planted_pool(spec: PoolSpec, tokenizer, embed: Callable[[list[str]], np.ndarray],
                 embedder_id: str) -> Pool:
    """``pool_chunks`` with every chunk and oracle query embedded (cached)."""
    pc_ = pool_chunks(spec, tokenizer)
    shards, embed_s, cached = {}, 0.0, 0
    for key, rows in pc_.shards.items():
        vecs, secs, hit = _embed_cached(rows, embed, embedder_id)
        embed_s += secs
        cached += len(rows) if hit else 0
        shards[key] = _table(rows, vecs, key)
    chunks = pa.concat_tables(shards.values())
    qvecs, secs, _ = _embed_cached([{"text": q} for q in pc_.anchors["query"].to_pylist()],
                                   embed, embedder_id)
    roots = {t["root_doc_id"] for t in pc_.truth}
    own = chunks.filter(pa.array([d in roots for d in chunks["doc_id"].to_pylist()])).select(
        ["doc_id", "chunk_id", "vector"])
    return Pool(chunks, pc_.truth, pc_.anchors, qvecs, own, pc_.root_texts, shards,
                embed_s + secs, cached)


def recall(candidates: pa.Table, anchors: pa.Table) -> tuple[float, float]:
    """(share of fact spans, share of roots) whose candidates hold a chunk of the source."""
    found: dict[tuple[str, int], set[str]] = {}
    for d, p, c in zip(candidates["doc_id"].to_pylist(), candidates["position"].to_pylist(),
                       candidates["chunk_doc_id"].to_pylist(), strict=True):
        found.setdefault((d, p), set()).add(c)
    per_span, per_root = [], {}
    for d, p, src in zip(anchors["doc_id"].to_pylist(), anchors["position"].to_pylist(),
                         anchors["source_doc_id"].to_pylist(), strict=True):
        hit = src in found.get((d, p), set())
        per_span.append(hit)
        per_root[d] = per_root.get(d, False) or hit
    return float(np.mean(per_span)), float(np.mean(list(per_root.values())))


@dataclass(frozen=True)
class Variant:
    name: str
    settings: dict  # RetrievalSettings fields
    index: dict = field(default_factory=dict)  # IndexSettings fields that differ


BEFORE = Variant("dense, before (no per-doc/dup limits)",
                 {"mode": "dense", "per_doc": None, "dedup_cosine": None, "depth": 16})
# (depth 16 = 2K, as the retrieval asset fetched before, plus the root's chunk count)
MODES = [BEFORE, Variant("dense", {"mode": "dense"}), Variant("lexical", {"mode": "lexical"}),
         Variant("hybrid", {"mode": "hybrid"})]
# each variant changes only the settings it names; the rest are the defaults (hybrid, the
# window's 2 rarest words, the root's 4 rarest words at weight 0.5, per_doc 1, dedup 0.95)
QUERY_VARIANTS = [
    Variant("lexical, whole window", {"mode": "lexical", "lexical_terms": None}),
    Variant("lexical, whole window, stop words kept", {"mode": "lexical", "lexical_terms": None},
            {"fts_stop_words": False}),
    Variant("lexical, whole window + anchor word x3", {"mode": "lexical", "lexical_terms": None,
                                                       "anchor_boost": 3.0}),
    Variant("lexical, whole window + anchor-word query", {"mode": "lexical",
                                                          "lexical_terms": None,
                                                          "anchor_word_query": True}),
    Variant("lexical, rarest 1", {"mode": "lexical", "lexical_terms": 1}),
    Variant("lexical, rarest 3", {"mode": "lexical", "lexical_terms": 3}),
    Variant("lexical, rarest 2 + anchor word x1", {"mode": "lexical", "anchor_boost": 1.0}),
    Variant("lexical, rarest 2 + anchor-word query", {"mode": "lexical",
                                                      "anchor_word_query": True}),
    Variant("hybrid, classic RRF (sum, equal weights)", {"mode": "hybrid", "fusion": "sum",
                                                         "lexical_weight": 1.0}),
    Variant("hybrid, sum, lexical weight 3", {"mode": "hybrid", "fusion": "sum",
                                              "lexical_weight": 3.0}),
    Variant("hybrid, max, equal weights", {"mode": "hybrid", "lexical_weight": 1.0}),
    Variant("hybrid, max, lexical weight 3", {"mode": "hybrid", "lexical_weight": 3.0}),
    Variant("hybrid, whole window", {"mode": "hybrid", "lexical_terms": None}),
    Variant("hybrid, rarest 1", {"mode": "hybrid", "lexical_terms": 1}),
    Variant("lexical, no root context", {"mode": "lexical", "context_terms": 0}),
    Variant("hybrid, no root context", {"mode": "hybrid", "context_terms": 0}),
    Variant("hybrid, root's 2 rarest words", {"mode": "hybrid", "context_terms": 2}),
    Variant("hybrid, root's 8 rarest words", {"mode": "hybrid", "context_terms": 8}),
    Variant("hybrid, root context weight 1", {"mode": "hybrid", "context_weight": 1.0}),
    Variant("hybrid, root context as its own list", {"mode": "hybrid", "context_query": "list",
                                                     "context_weight": 1.0}),
    Variant("hybrid, no per-doc/dup limits", {"mode": "hybrid", "per_doc": None,
                                              "dedup_cosine": None}),
    Variant("hybrid, depth 32", {"mode": "hybrid", "depth": 32}),
    Variant("hybrid, depth 64", {"mode": "hybrid", "depth": 64}),
]


def _timed_retrieve(pool: Pool, index: VectorIndex, settings, repeats: int = 3):
    """The stage's output (with its Markdown sample) and its queries/s: the fastest of
    ``repeats`` runs of the whole stage without the sample (a fixed cost per call)."""
    from lakehouse.retrieval import retrieve

    anchors = pool.anchors.select(["doc_id", "position", "query", "anchor_word"])
    table, stats = retrieve(anchors, pool.query_vectors, pool.own, index, settings,
                            pool.root_texts)
    quiet = settings.model_copy(update={"sample_queries": 0})
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        retrieve(anchors, pool.query_vectors, pool.own, index, quiet, pool.root_texts)
        best = min(best, time.perf_counter() - start)
    return table, stats, pool.anchors.num_rows / best


def native_hybrid(pool: Pool, index: VectorIndex, k: int, depth: int, repeats: int = 3
                  ) -> tuple[pa.Table, float]:
    """LanceDB's own hybrid query (vector + FTS of the same lexical text as ours, fused by
    its RRFReranker), one query at a time, its fused list then put through the same
    exclusions and limits as ours."""
    from lancedb.rerankers import RRFReranker

    from lakehouse import tables
    from lakehouse.retrieval import RetrievalSettings, rarest_terms, select
    from lakehouse.vector_index import terms_of

    table = index.db.open_table("chunks")
    s = RetrievalSettings()
    own_by_doc: dict[str, list[int]] = {}
    for i, d in enumerate(pool.own["doc_id"].to_pylist()):
        own_by_doc.setdefault(d, []).append(i)
    own_vecs = pool.own["vector"].combine_chunks().flatten().to_numpy().reshape(
        -1, index.dim)
    fetch = depth + max(len(v) for v in own_by_doc.values())
    reranker = RRFReranker()
    queries = pool.anchors["query"].to_pylist()
    best, rows = float("inf"), []
    for _ in range(repeats):
        start = time.perf_counter()
        df, _ = index.document_frequency(sorted({t for q in queries for t in terms_of(q)}))
        texts = [rarest_terms(q, df, s.lexical_terms) for q in queries]
        rows = []
        for a in range(pool.anchors.num_rows):
            root = pool.anchors["doc_id"][a].as_py()
            res = (table.search(query_type="hybrid").vector(pool.query_vectors[a])
                   .text(texts[a] or queries[a]).limit(fetch).rerank(reranker)
                   .select(["chunk_id", "doc_id", "vector"]).to_arrow())
            vecs = res["vector"].combine_chunks().flatten().to_numpy().reshape(-1, index.dim)
            hits = Hits(res["chunk_id"].to_pylist(), res["doc_id"].to_pylist(),
                        res["_relevance_score"].to_numpy().astype(np.float32),
                        vecs.astype(np.float32))
            f = select(root, {"dense": hits}, own_vecs[own_by_doc.get(root, [])],
                       pool.query_vectors[a], k, s.near_dup_cosine, s.per_doc,
                       s.dedup_cosine)
            rows += [{"doc_id": root, "position": pool.anchors["position"][a].as_py(),
                      "rank": c.rank, "chunk_id": c.chunk_id, "chunk_doc_id": c.chunk_doc_id}
                     for c in f.candidates]
        best = min(best, time.perf_counter() - start)
    schema = pa.schema([tables.RETRIEVAL_CANDIDATES.field(n) for n in
                        ("doc_id", "position", "rank", "chunk_id", "chunk_doc_id")])
    return pa.Table.from_pylist(rows, schema=schema), pool.anchors.num_rows / best


def build_index(uri: str, pool: Pool, params: IndexParams) -> tuple[VectorIndex, dict]:
    """Sync every shard but the last, then the last (how a new shard arrives); times both
    and a from-scratch rebuild of the full-text index for comparison with the merge."""
    index = VectorIndex(uri, pool.query_vectors.shape[1], params)
    keys = list(pool.shards)
    first = keys[:-1] or keys
    start = time.perf_counter()
    r1 = index.sync({k: "v1" for k in first}, lambda k: pool.shards[k].drop_columns(
        ["shard_key"]))
    t_build = time.perf_counter() - start
    out = {"build_s": t_build, "build_vector_s": r1.vector_s, "build_fts_s": r1.fts_s,
           "build_terms_s": r1.terms_s, "index": r1.index}
    if len(keys) > 1:
        start = time.perf_counter()
        r2 = index.sync({k: "v1" for k in keys}, lambda k: pool.shards[k].drop_columns(
            ["shard_key"]))
        out.update({"add_s": time.perf_counter() - start, "add_vector_s": r2.vector_s,
                    "add_fts_s": r2.fts_s, "add_terms_s": r2.terms_s,
                    "added_rows": pool.shards[keys[-1]].num_rows,
                    "index": r2.index})
    if params.fts:
        start = time.perf_counter()
        index.rebuild_fts()
        out["fts_rebuild_s"] = time.perf_counter() - start
    out["rows"] = index.count()
    return index, out


def measure_pool(pool: Pool, k: int = 8, variants: Sequence[Variant] = (), native: bool = True
                 ) -> dict:
    """Recall and queries/s of every mode (and variant) on one pool; index build times."""
    from lakehouse.retrieval import RetrievalSettings

    out: dict = {"chunks": pool.chunks.num_rows, "spans": pool.anchors.num_rows,
                 "roots": len({t["root_doc_id"] for t in pool.truth}), "modes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        vec_only, out["vector_only"] = build_index(f"{tmp}/v", pool, IndexParams(fts=False))
        del vec_only
        index, out["both"] = build_index(f"{tmp}/b", pool, IndexParams())
        for v in [*MODES, *variants]:
            idx = index if not v.index else VectorIndex(
                index.uri, index.dim, IndexParams(**v.index))
            if v.index:
                idx.sync(dict.fromkeys(pool.shards, "v1"),
                         lambda key: pool.shards[key].drop_columns(["shard_key"]))
            table, stats, qps = _timed_retrieve(pool, idx, RetrievalSettings(k=k, **v.settings))
            span, root = recall(table, pool.anchors)
            out["modes"][v.name] = {
                "span": span, "root": root, "qps": qps,
                "share_lexical_only": stats["share_lexical_only"],
                "share_dense_only": stats["share_dense_only"], "share_both": stats["share_both"],
                "excluded_per_doc": stats["excluded_per_doc"],
                "excluded_dup_candidate": stats["excluded_dup_candidate"],
                "settings": v.settings, "index": v.index}
            if v.name == "hybrid":
                out["sample"] = stats["sample"]
            if v.index:  # back to the default tokenizer for the next variant
                index.sync(dict.fromkeys(pool.shards, "v1"),
                           lambda key: pool.shards[key].drop_columns(["shard_key"]))
        if native:
            table, qps = native_hybrid(pool, index, k, RetrievalSettings().depth)
            span, root = recall(table, pool.anchors)
            out["modes"]["hybrid, LanceDB RRFReranker"] = {"span": span, "root": root,
                                                           "qps": qps}
    return out


def _load_models():
    from models.embedding import embed_texts
    from models.registry import MINILM, SMOLLM2, load_embedder, load_tokenizer, resolve_embedder

    tokenizer, _ = load_tokenizer(SMOLLM2)
    model = load_embedder(MINILM)
    return tokenizer, (lambda texts: embed_texts(model, texts)), resolve_embedder(MINILM).model_id


def planted_records(results: list[dict], k: int) -> list[Record]:
    """Records of every pool size: recall per mode (baseline: dense before), queries/s
    (baseline: dense), build time (baseline: vector index alone)."""
    from lakehouse.retrieval import RetrievalSettings

    default = RetrievalSettings().mode
    largest = max(r["chunks"] for r in results)
    records = []
    for r in results:
        n = r["chunks"]
        common = {"chunks": n, "spans": r["spans"], "roots": r["roots"], "k": k}
        before = r["modes"][BEFORE.name]
        dense_qps = r["modes"]["dense"]["qps"]
        at_target = n == largest
        for name, m in r["modes"].items():
            is_default = name == default
            span_t = ">= 0.9 (default mode, largest pool)" if is_default and at_target else ""
            root_t = ">= 0.98 (default mode, largest pool)" if is_default and at_target else ""
            records.append(Record(f"recall@{k} per span, {name}, {n:,} chunks", m["span"],
                                  before["span"], m["span"] / max(before["span"], 1e-9),
                                  "fraction", span_t or "report",
                                  m["span"] >= 0.9 if span_t else True, device_name(),
                                  {**common, **{x: m[x] for x in m if x not in
                                                ("span", "root", "qps")}}))
            records.append(Record(f"recall@{k} per root, {name}, {n:,} chunks", m["root"],
                                  before["root"], m["root"] / max(before["root"], 1e-9),
                                  "fraction", root_t or "report",
                                  m["root"] >= 0.98 if root_t else True, device_name(), common))
            qps_t = ">= 0.5 x dense" if name == "hybrid" else "report"
            records.append(Record(f"queries/s, {name} / dense, {n:,} chunks", m["qps"],
                                  dense_qps, m["qps"] / dense_qps, "queries/s", qps_t,
                                  m["qps"] / dense_qps >= 0.5 if name == "hybrid" else True,
                                  device_name(), common))
        both, vec = r["both"], r["vector_only"]
        records.append(Record(f"index build s, vectors + FTS / vectors, {n:,} chunks",
                              both["build_s"], vec["build_s"],
                              both["build_s"] / max(vec["build_s"], 1e-9), "s", "report", True,
                              device_name(), {**common, "both": both, "vector_only": vec}))
        if "add_fts_s" in both:
            records.append(Record(f"FTS merge of a new shard / FTS rebuild, {n:,} chunks",
                                  both["add_fts_s"], both["fts_rebuild_s"],
                                  both["add_fts_s"] / max(both["fts_rebuild_s"], 1e-9), "s",
                                  "report", True, device_name(),
                                  {**common, "added_rows": both["added_rows"]}))
    return records


def markdown_table(results: list[dict], k: int) -> str:
    names = list(results[0]["modes"])
    head = "| mode | " + " | ".join(f"{r['chunks']:,} chunks: span / root / q/s"
                                    for r in results) + " |"
    lines = [head, "|---|" + "---|" * len(results)]
    for name in names:
        cells = []
        for r in results:
            m = r["modes"].get(name)
            cells.append("-" if m is None else
                         f"{m['span']:.2f} / {m['root']:.2f} / {m['qps']:,.0f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def planted_main(sizes: Sequence[int] = SIZES, k: int = 8, variants: bool = True,
                 seed: int = 0) -> tuple[list[Record], list[dict]]:
    """The planted benchmark at each pool size; prints the mode x size table."""
    tokenizer, embed, embedder_id = _load_models()
    results = []
    for n in sizes:
        start = time.perf_counter()
        pool = planted_pool(PoolSpec(seed=seed, chunks=n), tokenizer, embed, embedder_id)
        prep = time.perf_counter() - start
        print(f"pool of {pool.chunks.num_rows:,} chunks ready in {prep:.0f} s "
              f"(embedding {pool.embed_s:.0f} s, {pool.cached:,} chunks from the cache)",
              flush=True)
        r = measure_pool(pool, k, QUERY_VARIANTS if variants else ())
        r["prepare_s"], r["embed_s"], r["cached"] = prep, pool.embed_s, pool.cached
        results.append(r)
    print("\n" + markdown_table(results, k))
    print("\nSample of hybrid queries at the largest pool:\n" + results[-1].get("sample", ""))
    return planted_records(results, k), results


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    what = args[0] if args else "all"
    if what in ("speed", "all"):
        report("retrieval", main_speed())
    if what in ("planted", "all"):
        sizes = [int(a) for a in args[1:]] or list(SIZES)
        records, results = planted_main(sizes)
        report("retrieval_planted", records)
        (Path(__file__).resolve().parent / "results" / "retrieval_planted_raw.json").write_text(
            json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
