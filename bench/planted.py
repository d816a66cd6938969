"""Planted dependencies found end to end, with the pipeline's stage functions and no Dagster.

On a planted corpus (``realistic``: one corpus of roots, sources and same-topic distractors
in free prose with recurring boilerplate, lakehouse.demo.realistic; or ``planted``: the old
two-corpus demo, log-style roots apart from their pool plus real prose), with SmolLM2 and
MiniLM, runs ingest -> tokenize -> score -> recurring text -> anchors -> chunks -> embed ->
retrieve (the pipeline's stage over a LanceDB index; ``before``: exact cosine, dense only)
-> verify -> decide, and reports against the ground truth:

* fact spans holding an anchor, anchors per 1K scored tokens;
* span precision / recall and pair precision / recall of the kept rows;
* where the kept rows of the roots point (true sources, other roots, other documents),
  copies among the rows that passed the rule and among those kept;
* verification forward tokens per root (pair passes plus, for the new default, the
  segment baselines).

Two variants: ``before`` (the paper's settings, the defaults before issue 12: entropy
anchors at alpha 2, anchors-only verification cut at the last anchor, dI > 0.4, no copy or
recurring handling) and ``after`` (today's defaults: surprise anchors outside recurring
text, every position read, the span rule, copies dropped). Only the roots with ground truth
are verified (in the realistic corpus every document is a root; the others' rows would not
be judged), and forward tokens are counted per verified root.

Cost on 2 CPU cores (SmolLM2 at ~400 tokens/s batched, less on a shared machine): about
6-12 minutes per (corpus, variant) at 24 realistic roots; the default run is one variant
(``after``) on the realistic corpus. ``python -m bench.planted --variant both --corpus
both`` gives the whole before/after table (about 30-40 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from bench.common import RESULTS, Record, device_name, report
from lakehouse.anchors import AnchorSettings, anchor_table, span_text
from lakehouse.chunking import chunk_spans, sentence_ends
from lakehouse.dependencies import DecideInputs, DecisionSettings, decide
from lakehouse.ids import chunk_id, doc_id
from lakehouse.normalize import clean_text
from lakehouse.planted_eval import anchor_enrichment, planted_token_spans
from lakehouse.recurring import (
    RecurringSettings,
    document_frequencies,
    recurring_masks,
    recurring_share,
    recurring_units,
    term_counts,
    unit_counts,
)

CHUNK_SIZE = 256
K = 8
NEAR_DUP = 0.95
SCORING = {"window": 2048, "overlap": 512, "token_budget": 4096, "block_size": 256}


@dataclass
class Corpus:
    """Documents after ingest: text by doc id, which are scored roots, which form the pool."""

    name: str
    texts: dict[str, str]
    roots: list[str]  # documents scored for anchors and verified (those with ground truth)
    scored: list[str]  # documents scored for anchors (the anchor rate counts all of them)
    pool: list[str]  # documents chunked into the retrieval pool
    truth: list[dict]


def realistic_corpus(seed: int = 0, n_roots: int = 24, n_distractors: int = 24,
                     **opts) -> Corpus:
    """One corpus, ``roles: [root, pool]``: every document is scored and in the pool."""
    from lakehouse.demo import realistic

    docs, truth = realistic.generate(seed=seed, n_roots=n_roots, n_distractors=n_distractors,
                                     corpus="realistic", **opts)
    texts = {doc_id("realistic", d.source_id, d.text): clean_text(d.text) for d in docs}
    roots = sorted({t["root_doc_id"] for t in truth})
    return Corpus("realistic", texts, roots, sorted(texts), sorted(texts), truth)


def planted_corpus(seed: int = 0, n_stories: int = 12, n_distractors: int = 12,
                   n_stdlib: int = 20) -> Corpus:
    """The old demo: roots in their own corpus, sources, distractors and real prose pooled."""
    from lakehouse.demo import planted, pystdlib

    docs, truth = planted.generate(seed=seed, n_stories=n_stories, n_distractors=n_distractors,
                                   corpus="planted", pool_corpus="planted-pool")
    texts, roots, pool = {}, [], []
    for d in docs:
        corpus = "planted" if d.role == "root" else "planted-pool"
        i = doc_id(corpus, d.source_id, d.text)
        texts[i] = clean_text(d.text)
        (roots if d.role == "root" else pool).append(i)
    for d in pystdlib.generate(n_docs=n_stdlib, max_chars=3000):
        i = doc_id("pystdlib", d["id"], d["text"])
        texts[i] = clean_text(d["text"])
        pool.append(i)
    return Corpus("planted", texts, sorted(roots), sorted(roots), sorted(pool), truth)


@dataclass
class Variant:
    name: str
    anchors: AnchorSettings
    positions: str  # what verification reads: all | anchors
    decision: DecisionSettings
    recurring: bool  # recurring text found (anchors skip it, chunks of it stay unindexed)


VARIANTS = {
    "before": Variant("before", AnchorSettings(rule="entropy", skip_recurring=False),
                      "anchors", DecisionSettings(rule="delta_i", copies="keep"), False),
    "after": Variant("after", AnchorSettings(), "all", DecisionSettings(), True),
}


@dataclass
class Prepared:
    corpus: Corpus
    tokens: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    profiles: pa.Table
    recurring: dict[str, np.ndarray]
    recurring_stats: dict
    doc_frequency: dict[int, int]
    timings: dict = field(default_factory=dict)


def _models():
    from models.registry import load_embedder, load_scorer

    model, tok = load_scorer("smollm2-135m")
    return model, tok, load_embedder("minilm-l6-v2")


def prepare(corpus: Corpus, model, tokenizer) -> Prepared:
    """Tokenize every document, score the scored ones, find recurring text."""
    from models.scoring import ScoringConfig, score_sequences
    from models.tokenize import tokenize_texts

    t0 = time.perf_counter()
    ids = sorted(corpus.texts)
    toks = tokenize_texts(tokenizer, [corpus.texts[i] for i in ids])
    tokens = {i: (t.input_ids, t.char_start, t.char_end) for i, t in zip(ids, toks,
                                                                       strict=True)}
    t1 = time.perf_counter()
    cfg = ScoringConfig(**SCORING)
    scores = score_sequences(model, [tokens[i][0] for i in corpus.scored], cfg)
    rows = {"doc_id": [], "entropy": [], "nll": [], "mean": [], "std": []}
    for i, s in zip(corpus.scored, scores, strict=True):
        h = s.entropy[np.isfinite(s.entropy)].astype(np.float64)
        rows["doc_id"].append(i)
        rows["entropy"].append(s.entropy.astype(np.float16).tolist())
        rows["nll"].append(s.nll.astype(np.float16).tolist())
        rows["mean"].append(float(h.mean()))
        rows["std"].append(float(h.std()))
    t2 = time.perf_counter()
    rec, rstats = recurring_units([unit_counts([corpus.texts[i] for i in ids])])
    masks = recurring_masks(_token_table(tokens, ids), corpus.texts,
                            set(rec["unit_hash"].to_pylist()))
    dft, _ = document_frequencies([term_counts([corpus.texts[i] for i in ids])], len(ids))
    df = dict(zip(dft["term_hash"].to_pylist(), dft["docs"].to_pylist(), strict=True))
    return Prepared(corpus, tokens, pa.table(rows), masks, rstats, df,
                    {"tokenize_s": t1 - t0, "score_s": t2 - t1,
                     "scored_tokens": int(sum(len(tokens[i][0]) for i in corpus.scored))})


def _token_table(tokens, ids) -> pa.Table:
    return pa.table({"doc_id": ids, "char_start": [tokens[i][1].tolist() for i in ids],
                     "char_end": [tokens[i][2].tolist() for i in ids]})


def pool_chunks(prep: Prepared, skip_recurring: bool) -> dict[str, dict]:
    """chunk id -> {doc, ids, text} of the pool; with ``skip_recurring`` chunks made (90%+)
    of recurring text stay out of the index."""
    share = RecurringSettings().max_chunk_share
    out = {}
    for d in prep.corpus.pool:
        ids, cs, ce = prep.tokens[d]
        text = prep.corpus.texts[d]
        mask = prep.recurring.get(d)
        for a, b in chunk_spans(len(ids), sentence_ends(text, ce), CHUNK_SIZE):
            if skip_recurring and mask is not None and recurring_share(mask, a, b) >= share:
                continue
            out[chunk_id(d, a, b)] = {"doc": d, "ids": np.asarray(ids[a:b], np.int64),
                                      "text": span_text(text, cs, ce, a, b)}
    return out


def dense_candidates(anchors: pa.Table, chunks: dict[str, dict], chunk_vecs: np.ndarray,
                     query_vecs: np.ndarray) -> dict[str, list]:
    """Exact cosine top-K per anchor, the root's own chunks and near-copies of them out."""
    names = list(chunks)
    docs = np.array([chunks[c]["doc"] for c in names])
    own: dict[str, np.ndarray] = {}
    for i, d in enumerate(docs):
        own.setdefault(d, []).append(i)
    sims = query_vecs @ chunk_vecs.T if len(query_vecs) else np.zeros((0, len(names)))
    out = {"doc_id": [], "position": [], "chunk_id": [], "chunk_doc_id": [], "rank": []}
    for row, (d, t) in enumerate(zip(anchors["doc_id"].to_pylist(),
                                     anchors["position"].to_pylist(), strict=True)):
        mine = own.get(d, [])
        dup = (chunk_vecs @ chunk_vecs[mine].T).max(1) > NEAR_DUP if mine else \
            np.zeros(len(names), bool)
        rank = 0
        for j in np.argsort(-sims[row], kind="stable"):
            if docs[j] == d or dup[j]:
                continue
            rank += 1
            for k, v in (("doc_id", d), ("position", t), ("chunk_id", names[j]),
                         ("chunk_doc_id", docs[j]), ("rank", rank)):
                out[k].append(v)
            if rank == K:
                break
    return out


@dataclass
class StageOutputs:
    """What one variant's stages produced (for tests and other benchmarks)."""

    anchors: pa.Table
    anchor_stats: dict
    chunks: dict[str, dict]
    candidates: dict[str, list]
    verification: object  # models.verification.Verification
    inputs: DecideInputs
    seconds: dict


def corpus_pool(prep: Prepared, chunks: dict[str, dict], chunk_vecs: np.ndarray):
    """The corpus's own pool chunks as a ``bench.retrieval.Pool`` (one shard), for the
    pipeline's retrieval stage."""
    from bench.retrieval import Pool

    names = list(chunks)
    vecs = np.asarray(chunk_vecs, np.float32).reshape(len(names), -1)
    dim = vecs.shape[1]
    docs = [chunks[c]["doc"] for c in names]
    table = pa.table({"chunk_id": names, "doc_id": docs, "corpus": [prep.corpus.name] * len(names),
                      "text": pa.array([chunks[c]["text"] for c in names], pa.large_string()),
                      "vector": pa.FixedSizeListArray.from_arrays(pa.array(vecs.ravel()), dim)})
    roots = set(prep.corpus.roots)
    own = table.filter(pa.array([d in roots for d in docs])).select(
        ["doc_id", "chunk_id", "vector"])
    shard = table.append_column("shard_key", pa.array(["corpus/0"] * len(names)))
    return Pool(table, prep.corpus.truth, pa.table({}), np.zeros((0, dim), np.float32), own,
                shards={"corpus/0": shard})


def index_candidates(prep: Prepared, anchors: pa.Table, query_vecs: np.ndarray, pool,
                     settings, known: dict[str, dict] | None = None
                     ) -> tuple[dict[str, list], dict[str, dict], dict]:
    """The pipeline's retrieval stage (``lakehouse.retrieval.retrieve`` over a LanceDB index
    with vectors and full text) over ``pool`` (the corpus's own chunks, ``corpus_pool``, or
    the planted corpus plus look-alikes, ``bench.retrieval.planted_pool``): candidates, the
    candidate chunks (token ids from ``known`` where given, else from the scorer's tokenizer)
    and retrieval statistics."""
    import tempfile

    from lakehouse.retrieval import retrieve
    from lakehouse.vector_index import VectorIndex
    from models.registry import SMOLLM2, load_tokenizer
    from models.tokenize import tokenize_texts

    with tempfile.TemporaryDirectory() as tmp:
        index = VectorIndex(f"{tmp}/index", query_vecs.shape[1])
        t0 = time.perf_counter()
        index.sync(dict.fromkeys(pool.shards, "v1"),
                   lambda key: pool.shards[key].drop_columns(["shard_key"]))
        build_s = time.perf_counter() - t0
        roots = {d: prep.corpus.texts[d] for d in prep.corpus.roots}
        table, stats = retrieve(anchors.select(["doc_id", "position", "query"]), query_vecs,
                                pool.own, index, settings, roots)
    cands = {k: table[k].to_pylist() for k in ("doc_id", "position", "chunk_id",
                                                "chunk_doc_id", "rank")}
    known = known or {}
    chunks = {c: known[c] for c in set(cands["chunk_id"]) if c in known}
    wanted = sorted(set(cands["chunk_id"]) - set(chunks))
    cid = pool.chunks["chunk_id"].to_pylist()
    row = {c: i for i, c in enumerate(cid)}
    texts = [pool.chunks["text"][row[c]].as_py() for c in wanted]
    docs = [pool.chunks["doc_id"][row[c]].as_py() for c in wanted]
    if wanted:
        tok, _ = load_tokenizer(SMOLLM2)
        ids = tokenize_texts(tok, texts)
        chunks.update({c: {"doc": d, "ids": np.asarray(t.input_ids, np.int64), "text": x}
                       for c, d, t, x in zip(wanted, docs, ids, texts, strict=True)})
    sources: dict[str, set[str]] = {}
    for t in prep.corpus.truth:
        sources.setdefault(t["root_doc_id"], set()).add(t["source_doc_id"])
    found = {d for d, s in zip(cands["doc_id"], cands["chunk_doc_id"], strict=True)
             if s in sources.get(d, ())}
    return cands, chunks, {
        "retrieval_pool_chunks": pool.chunks.num_rows, "index_build_s": build_s,
        "retrieval_mode": settings.mode, "retrieval_queries_per_s": stats["queries_per_s"],
        "roots_with_true_source_candidate": len(found & set(sources)),
        "roots_with_truth": len(sources)}


def pool_frequencies(pool) -> tuple[dict[int, int], int]:
    """Word document frequencies over the whole look-alike pool (each document's chunks
    joined), as the pipeline's term_frequencies count every corpus of the lake: a first name
    that look-alikes share is rare in the planted corpus alone but common in the pool."""
    texts: dict[str, list[str]] = {}
    for d, t in zip(pool.chunks["doc_id"].to_pylist(), pool.chunks["text"].to_pylist(),
                    strict=True):
        texts.setdefault(d, []).append(t)
    dft, _ = document_frequencies([term_counts([" ".join(v) for v in texts.values()])],
                                  len(texts))
    return dict(zip(dft["term_hash"].to_pylist(), dft["docs"].to_pylist(), strict=True)), \
        len(texts)


def stages(prep: Prepared, variant: Variant, model, embedder, pool=None,
           pool_df: tuple[dict[int, int], int] | None = None) -> StageOutputs:
    """Anchors -> chunks -> embed -> retrieve -> verify, for the roots with ground truth.

    Retrieval is the pipeline's retrieval stage (its defaults) over the corpus's own chunks,
    or over ``pool`` (a ``bench.retrieval.Pool`` of look-alikes) with ``pool_df``
    (``pool_frequencies``) the word frequencies verification judges rarity by; the
    ``before`` variant keeps what the pipeline did before: exact cosine, dense only."""
    from lakehouse.retrieval import RetrievalSettings
    from models.embedding import embed_texts
    from models.scoring import ScoringConfig
    from models.verification import VerifySettings, verify_candidates

    c = prep.corpus
    t0 = time.perf_counter()
    masks = prep.recurring if variant.recurring else {}
    anchors, astats = anchor_table(prep.profiles, _token_table(prep.tokens, c.scored),
                                   c.texts, masks, variant.anchors)
    roots = set(c.roots)
    mine = pa.array([d in roots for d in anchors["doc_id"].to_pylist()], pa.bool_())
    root_anchors = anchors.filter(mine)
    qv = embed_texts(embedder, root_anchors["query"].to_pylist())
    if pool is None:
        chunks = pool_chunks(prep, variant.recurring)
        chunk_vecs = embed_texts(embedder, [v["text"] for v in chunks.values()])
    if pool is None and variant.name == "before":
        cands = dense_candidates(root_anchors, chunks, chunk_vecs, qv)
    else:
        own = pool is None
        pool = corpus_pool(prep, chunks, chunk_vecs) if own else pool
        cands, found, rstats = index_candidates(prep, root_anchors, qv, pool,
                                                RetrievalSettings(k=K),
                                                chunks if own else None)
        chunks = chunks if own else found
        astats = {**astats, **rstats}
    t1 = time.perf_counter()
    v = verify_candidates(model, ScoringConfig(**SCORING), cands,
                          {d: np.asarray(prep.tokens[d][0], np.int64) for d in c.roots},
                          {k: x["ids"] for k, x in chunks.items()},
                          VerifySettings(positions=variant.positions))
    t2 = time.perf_counter()
    inputs = DecideInputs(cands, {d: prep.tokens[d][0] for d in c.roots},
                          {k: x["ids"] for k, x in chunks.items()}, c.texts,
                          {d: (prep.tokens[d][1], prep.tokens[d][2]) for d in c.roots},
                          {k: x["text"] for k, x in chunks.items()}, masks,
                          *(pool_df or (prep.doc_frequency, len(c.texts))))
    return StageOutputs(anchors, astats, chunks, cands, v, inputs,
                        {"retrieve_s": t1 - t0, "verify_s": t2 - t1})


def run_variant(prep: Prepared, variant: Variant, model, embedder, pool=None,
                pool_df: tuple[dict[int, int], int] | None = None) -> dict:
    """The stages, then decide; the figures of one (corpus, variant) run."""
    c = prep.corpus
    st = stages(prep, variant, model, embedder, pool, pool_df)
    v = st.verification
    table, stats = decide(st.inputs, v.rows, v.passes, variant.decision, c.truth)
    # what dropping copies contributes, on the same passes
    kept_copies = decide(st.inputs, v.rows, v.passes,
                         variant.decision.model_copy(update={"copies": "keep"}), c.truth)[1]
    # ... and the other parts, also on the same passes: rare words (document frequencies)
    # and the recurring class; anchors inside recurring text (anchor stage only)
    from dataclasses import replace

    no_rare = decide(replace(st.inputs, doc_frequency={}), v.rows, v.passes,
                     variant.decision, c.truth)[1]
    no_recurring = decide(replace(st.inputs, recurring={}), v.rows, v.passes,
                          variant.decision, c.truth)[1]
    offsets = {d: (prep.tokens[d][1], prep.tokens[d][2]) for d in c.roots}
    spans = planted_token_spans(c.truth, offsets)
    by_doc: dict[str, list[int]] = {}
    for d, t in zip(st.anchors["doc_id"].to_pylist(), st.anchors["position"].to_pylist(),
                    strict=True):
        by_doc.setdefault(d, []).append(t)
    enrich = anchor_enrichment(spans, {d: np.asarray(p) for d, p in by_doc.items()},
                               {d: len(prep.tokens[d][0]) for d in c.roots})
    if variant.positions == "anchors":  # the old pipeline read H from the stored profile
        forward = v.forward_tokens - v.baseline_tokens
    else:
        forward = v.forward_tokens
    keys = ("planted_verified_span_precision", "planted_verified_span_recall",
            "planted_verified_pair_precision", "planted_verified_pair_recall",
            "kept_to_true_source", "kept_to_other_root", "kept_to_other_document",
            "kept_rows_of_planted_roots", "copies_passed", "copies_kept", "rows",
            "verified", "span_rows", "pairs", "pairs_accepted", "mean_delta_i",
            "mean_delta_i_verified", "too_long", "planted_spans", "planted_roots")
    out = {k: stats.get(k) for k in keys}
    out.update({
        "corpus": c.name, "variant": variant.name, "roots": len(c.roots),
        "spans": len(spans), "spans_with_anchor": enrich.spans_with_anchor,
        "anchors_per_1k_tokens": st.anchor_stats["anchors_per_1k_tokens"],
        "anchors_skipped_recurring": st.anchor_stats["skipped_recurring"],
        "candidates": len(st.candidates["doc_id"]), "pool_chunks": len(st.chunks),
        **{k: st.anchor_stats[k] for k in ("retrieval_pool_chunks", "index_build_s",
                                           "retrieval_mode", "retrieval_queries_per_s",
                                           "roots_with_true_source_candidate",
                                           "roots_with_truth") if k in st.anchor_stats},
        "verify_forward_tokens_per_root": forward / max(len(c.roots), 1),
        "verify_pair_passes": v.pair_passes,
        "copies_keep_copies_passed": kept_copies.get("copies_passed"),
        "copies_keep_span_precision": kept_copies.get("planted_verified_span_precision"),
        "copies_keep_pair_precision": kept_copies.get("planted_verified_pair_precision"),
        **{"no_rare_words_" + k[17:]: no_rare.get(k) for k in keys[:4]},
        **{"no_recurring_class_" + k[17:]: no_recurring.get(k) for k in keys[:4]},
        "no_recurring_class_copies_passed": no_recurring.get("copies_passed"),
        "recurring_units": prep.recurring_stats["recurring_units"],
        "recurring_share": prep.recurring_stats["recurring_share"],
        **st.seconds, **prep.timings, "sample_markdown": stats["sample_markdown"]})
    return out


def load_corpus(corpus: str, n_roots: int = 24, seed: int = 0) -> Corpus:
    if corpus == "realistic":
        return realistic_corpus(seed=seed, n_roots=n_roots, n_distractors=n_roots)
    return planted_corpus(seed=seed)


def run(corpus: str = "realistic", variants: tuple[str, ...] = ("after",),
        n_roots: int = 24, seed: int = 0, lookalike_chunks: int = 0) -> list[dict]:
    """``lookalike_chunks`` > 0 (realistic corpus, 24 roots): retrieve from the planted
    corpus plus look-alike documents up to that many chunks (bench.retrieval's pool, cached
    embeddings) with the pipeline's retrieval stage instead of exact cosine."""
    model, tok, emb = _models()
    pool, pool_df = None, None
    if lookalike_chunks:
        if corpus != "realistic" or n_roots != 24:
            raise SystemExit("--lookalike-chunks needs the realistic corpus at 24 roots "
                             "(bench.retrieval's planted corpus)")
        from bench.retrieval import PoolSpec, planted_pool
        from models.embedding import embed_texts
        from models.registry import MINILM, resolve_embedder

        pool = planted_pool(PoolSpec(seed=seed, chunks=lookalike_chunks), tok,
                            lambda texts: embed_texts(emb, texts),
                            resolve_embedder(MINILM).model_id)
        pool_df = pool_frequencies(pool)
        print(f"look-alike pool: {pool.chunks.num_rows:,} chunks "
              f"({pool.cached:,} embeddings from the cache), {pool_df[1]:,} documents",
              flush=True)
    prep = prepare(load_corpus(corpus, n_roots, seed), model, tok)
    return [run_variant(prep, VARIANTS[v], model, emb, pool, pool_df) for v in variants]


TARGETS = {"planted_verified_span_recall": 0.7, "planted_verified_span_precision": 0.9,
           "planted_verified_pair_precision": 0.8, "planted_verified_pair_recall": 0.9}


def _records(results: list[dict]) -> list[Record]:
    recs = []
    before = {r["corpus"]: r for r in results if r["variant"] == "before"}
    for r in results:
        base = before.get(r["corpus"]) if r["variant"] == "after" else None
        params = {k: v for k, v in r.items() if k != "sample_markdown"}
        for key, target in TARGETS.items():
            val = r[key] if r[key] is not None else float("nan")
            b = base[key] if base and base[key] is not None else float("nan")
            name = key.removeprefix("planted_verified_")
            recs.append(Record(f"{r['corpus']} {r['variant']}: {name}", val, b,
                               val / b if b else float("nan"), "fraction", f">= {target}",
                               bool(val >= target), device_name(), params))
        val = r["verify_forward_tokens_per_root"]
        b = base["verify_forward_tokens_per_root"] if base else float("nan")
        recs.append(Record(f"{r['corpus']} {r['variant']}: verify tokens per root", val, b,
                           val / b if base else float("nan"), "tokens",
                           "<= 2x before", bool(not base or val <= 2 * b), device_name(),
                           params))
    return recs


def print_table(results: list[dict]) -> None:
    print("\n| corpus | variant | spans with anchor | span P / R | pair P / R | kept rows of "
          "roots -> true sources / other roots / other docs | copies passed / kept | "
          "anchors per 1K | verify tokens per root |")
    print("|---|---|---|---|---|---|---|---|---|")

    def f(x):
        return "nan" if x is None or x != x else f"{x:.2f}"

    for r in results:
        print(f"| {r['corpus']} | {r['variant']} | {r['spans_with_anchor']} / {r['spans']} | "
              f"{f(r['planted_verified_span_precision'])} / "
              f"{f(r['planted_verified_span_recall'])} | "
              f"{f(r['planted_verified_pair_precision'])} / "
              f"{f(r['planted_verified_pair_recall'])} | {r['kept_to_true_source']} / "
              f"{r['kept_to_other_root']} / {r['kept_to_other_document']} "
              f"(of {r['kept_rows_of_planted_roots']}) | {r['copies_passed']} / "
              f"{r['copies_kept']} | {r['anchors_per_1k_tokens']:.1f} | "
              f"{r['verify_forward_tokens_per_root']:,.0f} |")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", choices=["realistic", "planted", "both"], default="realistic")
    ap.add_argument("--variant", choices=["before", "after", "both"], default="after")
    ap.add_argument("--roots", type=int, default=24, help="realistic roots (>= 24 for the "
                    "issue's figures)")
    ap.add_argument("--seed", type=int, default=0, help="corpus seed (0: the reported one)")
    ap.add_argument("--lookalike-chunks", type=int, default=0,
                    help="retrieve with the pipeline's retrieval stage from a pool of the "
                    "planted corpus plus look-alike documents of this many chunks (e.g. "
                    "100000; bench.retrieval's pool)")
    args = ap.parse_args(argv)
    variants = ("before", "after") if args.variant == "both" else (args.variant,)
    corpora = ("realistic", "planted") if args.corpus == "both" else (args.corpus,)
    results = [r for c in corpora for r in run(c, variants, args.roots, args.seed,
                                              args.lookalike_chunks)]
    print_table(results)
    for r in results:
        if "retrieval_pool_chunks" in r:
            print(f"\n{r['corpus']} {r['variant']}: pool {r['retrieval_pool_chunks']:,} chunks, "
                  f"{r['retrieval_mode']} retrieval, true source among the candidates of "
                  f"{r['roots_with_true_source_candidate']} / {r['roots_with_truth']} roots, "
                  f"{r['retrieval_queries_per_s']:,.0f} queries/s")
    for r in results:
        print(f"\nsample kept dependencies ({r['corpus']}, {r['variant']}):\n"
              f"{r['sample_markdown']}")
    name = f"planted_lookalike_{args.lookalike_chunks}" if args.lookalike_chunks else "planted"
    report(name, _records(results))
    (RESULTS / f"{name}_runs.json").write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
