"""Dependencies in real text: long real documents whose own parts and linked documents are
the natural ground truth, run through the pipeline's stage functions with its defaults.

A long real document (a Wikipedia article from the gensim wheel's dump, a page of the Python
3.11 documentation) is cut into parts (lakehouse.realtext). A root is a later part of a
document; the pool holds every other part of every document. A chunk of the root's own
document, or of a document the root's document links to, counts as natural context: the
words a root depends on (names and terms the scorer half knows) are introduced there.

Two layouts, as a user would configure them:

* ``root``: the roots in a corpus of their own (``roles: [root]``), the other parts pooled;
* ``root_pool``: every part in one corpus (``roles: [root, pool]``): each root is in the
  pool too (its own chunks are excluded from its candidates as self) and in the word counts.

Per (corpus, layout) the benchmark reports, with the pipeline's defaults (``pipeline.yaml``:
anchors, retrieval, verification and scoring settings):

* kept rows per root; the share of kept rows, and of kept (root, document) pairs, from the
  root's own or a linked document, beside the same share for the top-1 retrieved candidate
  kept unverified (verification off) and for a random pool chunk;
* roots with at least one kept chunk of their own document;
* the root's mean NLL outside its anchor words, and on them, with its kept chunks prepended,
  against the same number of top-1 candidates and of random pool chunks (and nothing):
  what verification buys, measured on the root itself;
* copies kept, anchors per 1K scored tokens, a sample of the words anchors land on;
* forward tokens and seconds of verification per root.

Verification passes are cached by (root tokens, chunk tokens, scorer, scoring settings) in
``bench/results/cache`` so that a second layout, or a second decision rule, forwards only the
pairs it has not seen; the tokens and seconds per root reported are those the passes cost when
they were forwarded (each call's total spread over its passes), so they are what a run from
scratch costs. ``--no-cache`` forwards everything.

Cost on 2 CPU cores (verification ~250 tokens/s): about 2 minutes per root of 900 words with
the defaults (6 anchors, 4 candidates each: ~20 passes over the whole root); both layouts of
one corpus at 12 roots about 30 minutes, the second layout mostly from the cache. It scales
with roots x candidates per root x root length.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from bench.common import RESULTS, Record, device_name, report
from bench.planted import Corpus, Prepared, _token_table, prepare
from lakehouse.anchors import anchor_table, span_text, word_ids
from lakehouse.chunking import chunk_spans, sentence_ends
from lakehouse.dependencies import DecideInputs, DecisionSettings, Thresholds, decide
from lakehouse.ids import chunk_id, doc_id
from lakehouse.normalize import clean_text
from lakehouse.realtext import RealCorpus, python_docs, wikipedia
from lakehouse.recurring import RecurringSettings, recurring_share
from lakehouse.retrieval import anchor_word

LAYOUTS = ("root", "root_pool")
CACHE = RESULTS / "cache"
NATURAL = ("own", "linked")
CONDITIONS = ("none", "kept", "top1", "random")  # what is prepended to the root


@dataclass
class RealSetup:
    """A real corpus cut into parts, the roots drawn from it, and who relates to whom."""

    corpus: Corpus
    layout: str
    part_of: dict[str, tuple[str, int]]  # doc id -> (document, part index)
    links: dict[str, frozenset[str]]
    titles: dict[str, str] = field(default_factory=dict)  # doc id -> "document / heading"

    def relation(self, root: str, other: str) -> str:
        """own (another part of the root's document), linked (a part of a document the
        root's document links to) or other."""
        a, b = self.part_of[root][0], self.part_of[other][0]
        if a == b:
            return "own"
        return "linked" if b in self.links.get(a, ()) else "other"


def load_real(name: str, max_words: int = 900) -> RealCorpus:
    if name == "wikipedia":
        return wikipedia(max_words=max_words)
    if name == "pydocs":
        return python_docs(max_words=max_words)
    raise SystemExit(f"unknown corpus {name!r}: wikipedia | pydocs")


def pick_roots(real: RealCorpus, n_roots: int, seed: int, min_parts: int = 3) -> list:
    """One later part (index >= 1) of each of ``n_roots`` documents of at least ``min_parts``
    parts, drawn with ``seed``: a root whose own document has earlier and other parts."""
    docs = [d for d in real.documents() if len(real.parts_of(d)) >= min_parts]
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(docs), size=min(n_roots, len(docs)), replace=False))
    roots = []
    for i in chosen:
        parts = real.parts_of(docs[i])
        roots.append(parts[int(rng.integers(1, len(parts)))])
    return roots


def build(real: RealCorpus, layout: str, n_roots: int, seed: int) -> RealSetup:
    """The benchmark corpus of one layout: roots scored and verified, pool as the layout
    says (every other part; with ``root_pool`` the roots too)."""
    if layout not in LAYOUTS:
        raise SystemExit(f"layout must be one of {LAYOUTS}")
    texts, part_of, titles = {}, {}, {}
    ids = {}
    for p in real.parts:
        text = clean_text(p.text)
        i = doc_id(real.name, p.source_id, text)
        ids[p.source_id] = i
        texts[i] = text
        part_of[i] = (p.document, p.index)
        titles[i] = f"{p.document} / {p.heading or '(lead)'}"
    roots = sorted(ids[p.source_id] for p in pick_roots(real, n_roots, seed))
    root_set = set(roots)
    pool = sorted(texts) if layout == "root_pool" else sorted(set(texts) - root_set)
    corpus = Corpus(f"{real.name}:{layout}", texts, roots, roots, pool, [])
    return RealSetup(corpus, layout, part_of, dict(real.links), titles)


def _log(*parts) -> None:
    print(*parts, flush=True)


# -- verification passes, cached ------------------------------------------------------------

class PassCache:
    """Verification passes by content: (root tokens, chunk tokens) under one scorer and one
    set of scoring/verification settings (the file's key). Each entry keeps what forwarding
    it cost (its call's tokens and seconds spread over the call's passes)."""

    def __init__(self, key: str, enabled: bool = True):
        self.path = CACHE / f"passes-{key}.pkl"
        self.enabled = enabled
        self.entries: dict[str, dict] = {}
        if enabled and self.path.exists():
            self.entries = pickle.loads(self.path.read_bytes())

    @staticmethod
    def pair_key(doc: np.ndarray, chunk: np.ndarray) -> str:
        h = hashlib.sha256(np.asarray(doc, np.int64).tobytes())
        h.update(b"|")
        h.update(np.asarray(chunk, np.int64).tobytes())
        return h.hexdigest()[:32]

    def save(self) -> None:
        if self.enabled:
            CACHE.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_bytes(pickle.dumps(self.entries))
            tmp.replace(self.path)


def verify_cached(cache: PassCache, model, cfg, cands: dict[str, list],
                  doc_tokens: dict[str, np.ndarray], chunk_tokens: dict[str, np.ndarray],
                  vsettings, reserve: int, log=_log):
    """``models.verification.verify_candidates`` over the pairs the cache lacks, the rest
    read from it; returns (Verification with every pass and row, cost per pass key, pairs
    forwarded now)."""
    from models.verification import PassScores, Verification, candidate_rows, verify_candidates

    key_of = {}
    for d, c in zip(cands["doc_id"], cands["chunk_id"], strict=True):
        key_of[(d, c)] = cache.pair_key(doc_tokens[d], chunk_tokens[c])
    missing = {pair for pair, k in key_of.items() if k not in cache.entries}
    log(f"  verifying {len(missing)} new (root, chunk) pairs "
        f"({len(key_of) - len(missing)} from the cache)")
    # a few roots per call, saved after each: progress a person can follow, and a killed
    # run keeps what it forwarded
    by_root: dict[str, list] = {}
    for pair in sorted(missing):
        by_root.setdefault(pair[0], []).append(pair)
    groups = [sorted(by_root)[i:i + 3] for i in range(0, len(by_root), 3)]
    t_start, done = time.perf_counter(), 0
    for group in groups:
        want = {pair for d in group for pair in by_root[d]}
        sel = [i for i, pair in enumerate(zip(cands["doc_id"], cands["chunk_id"],
                                              strict=True)) if pair in want]
        sub = {k: [v[i] for i in sel] for k, v in cands.items()}
        t0 = time.perf_counter()
        v = verify_candidates(model, cfg, sub, doc_tokens, chunk_tokens, vsettings,
                              chunk_reserve=reserve)
        secs = time.perf_counter() - t0
        per_tok, per_s = v.forward_tokens / len(v.passes), secs / len(v.passes)
        for p in v.passes:
            cache.entries[key_of[(p.doc_id, p.chunk_id)]] = {
                "positions": p.positions, "h": p.h, "nll": p.nll, "h_prime": p.h_prime,
                "nll_prime": p.nll_prime, "context_start": p.context_start,
                "tokens": per_tok, "seconds": per_s}
        cache.save()
        done += len(want)
        spent = time.perf_counter() - t_start
        log(f"  {done}/{len(missing)} pairs, {v.forward_tokens / max(secs, 1e-9):.0f} "
            f"tokens/s, {spent:.0f} s, about {spent / done * (len(missing) - done):.0f} s "
            "left")
    passes, cost = [], {}
    for (d, c), k in sorted(key_of.items()):
        e = cache.entries[k]
        passes.append(PassScores(d, c, e["positions"], e["h"], e["nll"], e["h_prime"],
                                 e["nll_prime"], e["context_start"]))
        cost[(d, c)] = (e["tokens"], e["seconds"])
    v = Verification(passes, int(sum(t for t, _ in cost.values())), len(passes), 0)
    v.rows = candidate_rows(cands, passes)
    return v, cost, len(missing)


# -- the run ----------------------------------------------------------------------------------

@dataclass
class Stages:
    setup: RealSetup
    prep: Prepared
    anchors: pa.Table
    anchor_stats: dict
    chunks: dict[str, dict]  # every part's chunks: {doc, ids, text}
    candidates: dict[str, list]
    verification: object
    cost: dict
    inputs: DecideInputs
    seconds: dict


def chunk_all(prep: Prepared, docs: list[str], size: int) -> dict[str, dict]:
    """Chunks of ``docs`` as the chunks stage cuts them (sentence ends, ``size`` tokens);
    chunks made of recurring text are marked (the index leaves them out)."""
    share = RecurringSettings().max_chunk_share
    out = {}
    for d in docs:
        ids, cs, ce = prep.tokens[d]
        text = prep.corpus.texts[d]
        mask = prep.recurring.get(d)
        for a, b in chunk_spans(len(ids), sentence_ends(text, ce), size):
            out[chunk_id(d, a, b)] = {
                "doc": d, "ids": np.asarray(ids[a:b], np.int64),
                "text": span_text(text, cs, ce, a, b),
                "recurring": bool(mask is not None and recurring_share(mask, a, b) >= share)}
    return out


def run_stages(setup: RealSetup, prep: Prepared, config, model, embedder, cache: PassCache,
               vectors: dict[str, np.ndarray], log=_log) -> Stages:
    """anchors -> chunks -> embed -> retrieve (LanceDB, the pipeline's stage) -> verify."""
    import tempfile

    from lakehouse.retrieval import retrieve
    from lakehouse.vector_index import VectorIndex
    from models.embedding import embed_texts
    from models.scoring import ScoringConfig

    c = setup.corpus
    t0 = time.perf_counter()
    anchors, astats = anchor_table(prep.profiles, _token_table(prep.tokens, c.scored),
                                   c.texts, prep.recurring, config.anchors)
    qv = embed_texts(embedder, anchors["query"].to_pylist())
    chunks = chunk_all(prep, sorted(c.texts), config.chunking.size)
    vec_file = CACHE / f"vectors-{config.models.embedder}.pkl"
    if not vectors and cache.enabled and vec_file.exists():
        vectors.update(pickle.loads(vec_file.read_bytes()))
    new = [k for k in chunks if k not in vectors]
    if new:
        log(f"  embedding {len(new):,} chunks ...")
        for k, v in zip(new, embed_texts(embedder, [chunks[k]["text"] for k in new]),
                        strict=True):
            vectors[k] = v
        if cache.enabled:  # chunk ids hash the document's text and the token span
            CACHE.mkdir(parents=True, exist_ok=True)
            vec_file.with_suffix(".tmp").write_bytes(pickle.dumps(vectors))
            vec_file.with_suffix(".tmp").replace(vec_file)
    pool = set(c.pool)
    names = [k for k, v in chunks.items() if v["doc"] in pool and not v["recurring"]]
    dim = qv.shape[1]

    def table(keys):
        return pa.table({
            "chunk_id": keys, "doc_id": [chunks[k]["doc"] for k in keys],
            "corpus": [c.name] * len(keys),
            "text": pa.array([chunks[k]["text"] for k in keys], pa.large_string()),
            "vector": pa.FixedSizeListArray.from_arrays(
                pa.array(np.stack([vectors[k] for k in keys]).ravel()), dim)})

    roots = set(c.roots)
    own = table([k for k, v in chunks.items() if v["doc"] in roots])
    with tempfile.TemporaryDirectory() as tmp:
        index = VectorIndex(f"{tmp}/index", dim, config.index)
        index.sync({"corpus/0": "v1"}, lambda key: table(names))
        cands_t, rstats = retrieve(anchors.select(["doc_id", "position", "query"]), qv,
                                   own, index, config.retrieval,
                                   {d: c.texts[d] for d in c.roots})
    cands = {k: cands_t[k].to_pylist() for k in ("doc_id", "position", "chunk_id",
                                                  "chunk_doc_id", "rank")}
    t1 = time.perf_counter()
    s = config.scoring
    cfg = ScoringConfig(window=s.window, overlap=s.overlap, token_budget=s.token_budget,
                        block_size=s.block_size)
    doc_tokens = {d: np.asarray(prep.tokens[d][0], np.int64) for d in c.roots}
    chunk_tokens = {k: chunks[k]["ids"] for k in set(cands["chunk_id"])}
    v, cost, fresh = verify_cached(cache, model, cfg, cands, doc_tokens, chunk_tokens,
                                   config.verification, config.chunking.size, log)
    t2 = time.perf_counter()
    inputs = DecideInputs(cands, {d: prep.tokens[d][0] for d in c.roots}, chunk_tokens,
                          c.texts, {d: (prep.tokens[d][1], prep.tokens[d][2]) for d in c.roots},
                          {k: chunks[k]["text"] for k in chunk_tokens}, prep.recurring,
                          prep.doc_frequency, len(c.texts))
    return Stages(setup, prep, anchors, {**astats, **{f"retrieval_{k}": x for k, x in
                                                       rstats.items() if k != "sample"}},
                  chunks, cands, v, cost, inputs,
                  {"retrieve_s": t1 - t0, "verify_s": t2 - t1, "pairs_forwarded": fresh})


class _Unpickler(pickle.Unpickler):
    """Stage outputs pickled by ``python -m bench.realtext`` name their classes ``__main__``."""

    def find_class(self, module: str, name: str):
        return super().find_class(__name__ if module == "__main__" else module, name)


def load_stages(path: Path) -> Stages:
    """Stage outputs saved with ``--save-stages``, to try decision rules on their passes."""
    with open(path, "rb") as fh:
        return _Unpickler(fh).load()


def decision_of(config) -> DecisionSettings:
    """The decision part of the configured verification settings."""
    return DecisionSettings(**{k: getattr(config.verification, k)
                               for k in DecisionSettings.model_fields})


def anchor_word_mask(st: Stages, d: str) -> np.ndarray:
    """Bool per token of root ``d``: the token belongs to a word holding an anchor."""
    ids, cs, ce = st.prep.tokens[d]
    words = word_ids(st.setup.corpus.texts[d], cs, ce)
    pos = [t for dd, t in zip(st.anchors["doc_id"].to_pylist(),
                              st.anchors["position"].to_pylist(), strict=True) if dd == d]
    return np.isin(words, np.unique(words[pos])) if pos else np.zeros(len(ids), bool)


def context_nll(st: Stages, model, chunk_lists: dict[str, dict[str, list[str]]],
                cache: PassCache, log=_log) -> dict[str, dict[str, tuple[float, float]]]:
    """Per root and condition, (mean NLL of the root's tokens outside its anchor words, mean
    NLL on its anchor words) with the condition's chunks prepended (all of them in one
    sequence, the scorer's whole window; "none": the root alone)."""
    from models.scoring import ScoringConfig, model_window, score_positions

    window = model_window(model)
    todo, keys = [], []
    passes = {(p.doc_id, p.chunk_id): p for p in st.verification.passes}
    read: dict[str, np.ndarray] = {}
    for d, conds in chunk_lists.items():
        doc = np.asarray(st.prep.tokens[d][0], np.int64)
        for name, ids in conds.items():
            # the root alone, or one candidate chunk: read off a verification pass (every
            # position of the root, on the same context), nothing to forward
            one = passes.get((d, ids[0])) if len(ids) == 1 else None
            base = next((p for (dd, _), p in passes.items() if dd == d), None) \
                if not ids else None
            if one is not None or base is not None:
                p = one if one is not None else base
                nll = np.full(len(doc), np.nan, np.float32)
                nll[p.positions] = p.nll_prime if one is not None else p.nll
                key = f"pass:{d}:{name}"
                read[key] = nll
                keys.append((d, name, key, 0))
                continue
            pre = [st.chunks[k]["ids"] for k in ids]
            while pre and sum(map(len, pre)) + len(doc) > window:
                pre = pre[:-1]
            seq = np.concatenate(pre + [doc]) if pre else doc
            key = "ctx:" + cache.pair_key(doc, seq[:len(seq) - len(doc)])
            keys.append((d, name, key, len(seq) - len(doc)))
            if key not in cache.entries:
                todo.append((key, seq, len(seq) - len(doc)))
    if todo:
        log(f"  scoring {len(todo)} roots with their chunk sets prepended ...")
        cfg = ScoringConfig(window=0, token_budget=8192, block_size=256)
        got = score_positions(model, [s for _, s, _ in todo],
                              [np.arange(max(off, 1), len(s)) for _, s, off in todo], cfg)
        for (key, _, off), g in zip(todo, got, strict=True):
            cache.entries[key] = {"nll": np.concatenate([[np.nan] if off == 0 else [],
                                                         g.nll]).astype(np.float32)}
        cache.save()
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for d, name, key, _ in keys:
        nll = np.asarray(read[key] if key in read else cache.entries[key]["nll"], np.float64)
        mask = anchor_word_mask(st, d)
        ok = np.isfinite(nll)
        ok[0] = False  # position 0 is scored only with a prefix: compare like with like
        out.setdefault(d, {})[name] = (float(nll[ok & ~mask].mean()),
                                       float(nll[ok & mask].mean()) if (ok & mask).any()
                                       else float("nan"))
    return out


# The span rule as it was before issue 24, on the same passes: absolute thresholds tuned on
# planted pseudo-words (8 nats a word, 16 removed), a word rare in at most 5 documents,
# each entity judged alone (no root-wide judgement, no comparison between chunks).
BEFORE = (DecisionSettings(priming="off", comparative=0.0, rare_max_share=0.001,
                           min_relative_gain=0.5),
          Thresholds(word_nll=8.0, gain=16.0, secondary_nll=3.0, secondary_gain=3.0, words=0))


def evaluate(st: Stages, model, decision: DecisionSettings, cache: PassCache, seed: int,
             log=_log, thresholds: Thresholds | None = None, name: str = "defaults") -> dict:
    """The report's figures for one (corpus, layout) under one decision rule."""
    setup, c = st.setup, st.setup.corpus
    v = st.verification
    table, dstats = decide(st.inputs, v.rows, v.passes, decision, thresholds=thresholds)
    rows = table.to_pylist()
    kept = [r for r in rows if r["verified"]]
    rel = [setup.relation(r["doc_id"], r["chunk_doc_id"]) for r in kept]
    pairs = {(r["doc_id"], setup.part_of[r["chunk_doc_id"]][0]): setup.relation(
        r["doc_id"], r["chunk_doc_id"]) for r in kept}
    cand = st.candidates
    top1 = [(d, cd) for d, cd, rk in zip(cand["doc_id"], cand["chunk_doc_id"], cand["rank"],
                                         strict=True) if rk == 1]
    top1_rel = [setup.relation(d, cd) for d, cd in top1]
    top1_pairs = {(d, setup.part_of[cd][0]): setup.relation(d, cd) for d, cd in top1}
    # a random pool chunk: the share of the pool's chunks (the root's own excluded) that are
    # natural context of the root, averaged over roots
    pool = set(c.pool)
    pool_chunks = [(k, x["doc"]) for k, x in st.chunks.items()
                   if x["doc"] in pool and not x["recurring"]]
    rand_share = []
    for d in c.roots:
        others = [cd for _, cd in pool_chunks if cd != d]
        rand_share.append(np.mean([setup.relation(d, cd) in NATURAL for cd in others]))
    own_roots = {r["doc_id"] for r, x in zip(kept, rel, strict=True) if x == "own"}

    def share(xs) -> float:
        xs = list(xs)
        return float(np.mean([x in NATURAL for x in xs])) if xs else float("nan")

    # what verification buys, on the root itself
    rng = np.random.default_rng(seed)
    lists: dict[str, dict[str, list[str]]] = {}
    for d in c.roots:
        mine = sorted({r["chunk_id"] for r in kept if r["doc_id"] == d},
                      key=lambda k: -max((r["gain"] or 0.0) for r in kept
                                         if r["doc_id"] == d and r["chunk_id"] == k))
        order = sorted((rk, p, ck) for dd, p, ck, rk in zip(
            cand["doc_id"], cand["position"], cand["chunk_id"], cand["rank"], strict=True)
            if dd == d and rk == 1)
        firsts = list(dict.fromkeys(ck for _, _, ck in order))
        others = [k for k, cd in pool_chunks if cd != d]
        m = len(mine)
        lists[d] = {"none": [], "kept": mine, "top1": firsts[:m],
                    "random": [others[i] for i in rng.choice(len(others), size=m,
                                                             replace=False)] if m else []}
    nll = context_nll(st, model, lists, cache, log)
    with_kept = [d for d in c.roots if lists[d]["kept"]]
    lower_top1 = sum(nll[d]["kept"][0] < nll[d]["top1"][0] for d in with_kept)
    lower_random = sum(nll[d]["kept"][0] < nll[d]["random"][0] for d in with_kept)
    same_as_top1 = sum(set(lists[d]["kept"]) == set(lists[d]["top1"]) for d in with_kept)

    def mean_of(cond: str, j: int, docs) -> float:
        xs = [nll[d][cond][j] for d in docs if np.isfinite(nll[d][cond][j])]
        return float(np.mean(xs)) if xs else float("nan")

    toks = sum(st.cost[(d, ck)][0] for d, ck in st.cost)
    secs = sum(st.cost[(d, ck)][1] for d, ck in st.cost)
    n = len(c.roots)
    words = Counter()
    for d, t in zip(st.anchors["doc_id"].to_pylist(), st.anchors["position"].to_pylist(),
                    strict=True):
        _, cs, ce = st.prep.tokens[d]
        words[anchor_word(c.texts[d], cs, ce, t)] += 1
    return {
        "corpus": c.name.split(":")[0], "layout": setup.layout, "rule": name,
        "thresholds": dstats.get("thresholds"),
        "roots": n, "pool_parts": len(c.pool), "pool_chunks": len(pool_chunks),
        "anchors": st.anchors.num_rows,
        "anchors_per_1k_tokens": st.anchor_stats["anchors_per_1k_tokens"],
        "anchor_words_sample": [w for w, _ in words.most_common(30)],
        "candidates": len(cand["doc_id"]), "pairs": len(st.cost),
        "kept_rows": len(kept), "kept_rows_per_root": len(kept) / n,
        "kept_natural_share": share(rel), "kept_own_share": float(np.mean(
            [x == "own" for x in rel])) if rel else float("nan"),
        "kept_pairs": len(pairs), "kept_pairs_natural_share": share(pairs.values()),
        "top1_natural_share": share(top1_rel), "top1_pairs_natural_share":
            share(top1_pairs.values()),
        "random_natural_share": float(np.mean(rand_share)),
        "roots_with_own_kept": len(own_roots), "roots_with_own_kept_share": len(own_roots) / n,
        "roots_with_own_candidate": len({d for d, cd in zip(cand["doc_id"],
                                         cand["chunk_doc_id"], strict=True)
                                         if setup.relation(d, cd) == "own"}),
        "copies_kept": dstats["copies_kept"],
        "roots_with_kept": len(with_kept),
        "kept_beats_top1_roots": lower_top1, "kept_beats_top1_share": lower_top1 / n,
        "kept_same_as_top1_roots": same_as_top1,
        "kept_beats_random_roots": lower_random,
        **{f"nll_rest_{k}": mean_of(k, 0, with_kept) for k in ("none", "kept", "top1",
                                                               "random")},
        **{f"nll_anchor_{k}": mean_of(k, 1, with_kept) for k in ("none", "kept", "top1",
                                                                 "random")},
        "verify_tokens_per_root": toks / n, "verify_seconds_per_root": secs / n,
        "pairs_forwarded_now": st.seconds["pairs_forwarded"],
        "sample_markdown": sample_text(st, kept, 4),
    }


def sample_text(st: Stages, kept: list[dict], n: int) -> str:
    """Kept rows of distinct roots as text: the root around the anchor word, the chunk's
    document and start, its relation to the root, and the figures."""
    seen, out = set(), []
    setup = st.setup
    for r in sorted(kept, key=lambda r: -(r["gain"] or 0.0)):
        if r["doc_id"] in seen:
            continue
        seen.add(r["doc_id"])
        _, cs, ce = st.prep.tokens[r["doc_id"]]
        text = setup.corpus.texts[r["doc_id"]]
        a, b = int(cs[r["span_start"]]), int(ce[r["span_end"] - 1])
        ctx = " ".join((text[max(0, a - 120):a] + "**" + text[a:b] + "**"
                        + text[b:b + 60]).split())
        chunk = " ".join(st.chunks[r["chunk_id"]]["text"][:200].split())
        out.append(f"- root {setup.titles[r['doc_id']]}: …{ctx}…\n"
                   f"  chunk ({setup.relation(r['doc_id'], r['chunk_doc_id'])}: "
                   f"{setup.titles[r['chunk_doc_id']]}): {chunk}…\n"
                   f"  NLL {r['nll']:.2f} -> {r['nll_prime']:.2f}, gain {r['gain']:.2f} nats")
        if len(out) == n:
            break
    return "\n".join(out)


def pass_table(st: Stages) -> list[dict]:
    """Per (root, chunk) pass, what a decision rule could read: the relation, the fall of
    NLL at the anchors and over the rest of the root (for analysis, bench/results)."""
    out = []
    anchors: dict[str, list[int]] = {}
    for d, t in zip(st.anchors["doc_id"].to_pylist(), st.anchors["position"].to_pylist(),
                    strict=True):
        anchors.setdefault(d, []).append(t)
    pos_of = {}
    for d, p, ck in zip(st.candidates["doc_id"], st.candidates["position"],
                        st.candidates["chunk_id"], strict=True):
        pos_of.setdefault((d, ck), []).append(p)
    for p in st.verification.passes:
        mask = anchor_word_mask(st, p.doc_id)[p.positions]
        fall = np.asarray(p.nll, np.float64) - np.asarray(p.nll_prime, np.float64)
        ok = np.isfinite(fall)
        at = [int(np.searchsorted(p.positions, t)) for t in pos_of[(p.doc_id, p.chunk_id)]]
        out.append({"root": p.doc_id, "chunk": p.chunk_id,
                    "relation": st.setup.relation(p.doc_id, st.chunks[p.chunk_id]["doc"]),
                    "anchor_fall_max": float(np.nanmax(fall[at])),
                    "anchor_words_fall": float(fall[ok & mask].sum()),
                    "rest_fall_mean": float(fall[ok & ~mask].mean()),
                    "rest_fall_sum": float(fall[ok & ~mask].sum()),
                    "rest_cut_1nat": float((fall[ok & ~mask] > 1).mean()),
                    "tokens": int(ok.sum())})
    return out


TARGETS = {"kept_natural_share": 0.8, "kept_rows_per_root": 1.0,
           "roots_with_own_kept_share": 0.8, "kept_beats_top1_share": 0.9}


def records(results: list[dict]) -> list[Record]:
    recs = []
    for r in results:
        params = {k: v for k, v in r.items() if k != "sample_markdown"}
        base = {"kept_natural_share": r["top1_natural_share"],
                "kept_rows_per_root": float("nan"), "roots_with_own_kept_share": float("nan"),
                "kept_beats_top1_share": float("nan")}
        for key, target in TARGETS.items():
            val, b = r[key], base[key]
            recs.append(Record(f"{r['corpus']} {r['layout']} {r['rule']}: {key}", val, b,
                               val / b if b == b and b else float("nan"), "fraction",
                               f">= {target}", bool(val >= target), device_name(), params))
        recs.append(Record(f"{r['corpus']} {r['layout']} {r['rule']}: verify tokens per root",
                           r["verify_tokens_per_root"], float("nan"), float("nan"), "tokens",
                           "", True, device_name(), params))
    return recs


def print_table(results: list[dict]) -> None:
    def f(x, d=2):
        return "nan" if x is None or x != x else f"{x:.{d}f}"

    print("\n| corpus | layout | rule | kept rows / root | kept own+linked (rows / pairs) | top-1 "
          "own+linked | random | roots with own kept | kept beats top-1 (roots) | root NLL "
          "none / kept / top-1 / random | anchor NLL none / kept / top-1 / random | copies "
          "kept | anchors / 1K | verify tokens, s / root |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['corpus']} | {r['layout']} | {r['rule']} | {f(r['kept_rows_per_root'])} "
              f"({r['kept_rows']}) | {f(r['kept_natural_share'])} / "
              f"{f(r['kept_pairs_natural_share'])} | {f(r['top1_natural_share'])} | "
              f"{f(r['random_natural_share'], 3)} | {r['roots_with_own_kept']} / {r['roots']} "
              f"| {r['kept_beats_top1_roots']} / {r['roots']} | "
              f"{' / '.join(f(r['nll_rest_' + k], 3) for k in CONDITIONS)}"
              f" | {' / '.join(f(r['nll_anchor_' + k]) for k in CONDITIONS)}"
              f" | {r['copies_kept']} | {f(r['anchors_per_1k_tokens'], 1)} | "
              f"{r['verify_tokens_per_root']:,.0f}, {r['verify_seconds_per_root']:.0f} |")


def main(argv: list[str] | None = None) -> None:
    from models.registry import load_embedder, load_scorer, resolve_scorer
    from orchestration.config import load_config

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", choices=["wikipedia", "pydocs", "both"], default="both")
    ap.add_argument("--layout", choices=[*LAYOUTS, "both"], default="both")
    ap.add_argument("--roots", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-words", type=int, default=900)
    ap.add_argument("--config", type=Path, default=None, help="pipeline config (default: "
                    "the project's pipeline.yaml, whose settings are the defaults measured)")
    ap.add_argument("--no-cache", action="store_true", help="forward every pass")
    ap.add_argument("--before", action="store_true", help="also the span rule as it was "
                    "before issue 24 (absolute thresholds, no root-wide judgement) on the same "
                    "passes")
    ap.add_argument("--from-stages", action="store_true", help="read the stage outputs "
                    "--save-stages wrote instead of running the stages (decision rules only)")
    ap.add_argument("--save-stages", action="store_true", help="pickle each layout's stage "
                    "outputs under bench/results/cache (to try decision rules on them)")
    args = ap.parse_args(argv)
    config = load_config(args.config)
    model, tok = load_scorer(config.models.scorer)
    emb = load_embedder(config.models.embedder)
    corpora = ("wikipedia", "pydocs") if args.corpus == "both" else (args.corpus,)
    layouts = LAYOUTS if args.layout == "both" else (args.layout,)
    s = config.scoring
    scorer = resolve_scorer(config.models.scorer).model_id
    key = hashlib.sha256(json.dumps([scorer, s.window, s.overlap, config.verification.positions,
                                     config.chunking.size]).encode()).hexdigest()[:12]
    cache = PassCache(key, not args.no_cache)
    results, passes = [], []
    for name in corpora:
        t0 = time.perf_counter()
        real = None if args.from_stages else load_real(name, args.max_words)
        vectors: dict[str, np.ndarray] = {}
        prep = None
        for layout in layouts:
            saved = CACHE / f"stages-{name}-{layout}.pkl"
            if args.from_stages and saved.exists():
                st = load_stages(saved)
                print(f"{name} {layout}: stage outputs from {saved}", flush=True)
            else:
                real = real or load_real(name, args.max_words)
                setup = build(real, layout, args.roots, args.seed)
                print(f"{name} {layout}: {len(setup.corpus.roots)} roots, "
                      f"{len(setup.corpus.pool)} pool parts ({time.perf_counter() - t0:.0f} s)",
                      flush=True)
                if prep is None:
                    prep = prepare(setup.corpus, model, tok)
                prep.corpus = setup.corpus
                st = run_stages(setup, prep, config, model, emb, cache, vectors)
            if args.save_stages:  # for trying decision rules on the same passes
                CACHE.mkdir(parents=True, exist_ok=True)
                (CACHE / f"stages-{name}-{layout}.pkl").write_bytes(pickle.dumps(st))
            rules = [("defaults", decision_of(config), None)]
            if args.before:
                rules.insert(0, ("before", *BEFORE))
            for rule, decision, fixed in rules:
                r = evaluate(st, model, decision, cache, args.seed, thresholds=fixed,
                             name=rule)
                r["seconds"] = time.perf_counter() - t0
                results.append(r)
                print_table([r])
            passes += [{"corpus": name, "layout": layout, **p} for p in pass_table(st)]
    print_table(results)
    for r in results:
        print(f"\n{r['corpus']} {r['layout']} ({r['rule']}): anchors land on: "
              f"{', '.join(r['anchor_words_sample'][:20])}")
        print(f"sample kept dependencies:\n{r['sample_markdown'] or '(none kept)'}")
    out = "realtext" if args.corpus == "both" else f"realtext_{args.corpus}"
    report(out, records(results))
    (RESULTS / f"{out}_runs.json").write_text(json.dumps(results, indent=2, default=float))
    (RESULTS / f"{out}_passes.json").write_text(json.dumps(passes, default=float))


if __name__ == "__main__":
    main()
