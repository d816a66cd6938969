"""What one new pool shard costs: an incremental update against a from-scratch run.

A lake of N pool shards (N = 8, 32, 128; real Wikipedia parts from the gensim wheel, dealt
out to shards document by document) and a fixed set of roots (later parts of articles,
SmolLM2 anchors). For each N: the root shard is retrieved and verified from scratch (which
stores its searches and passes, as the assets do), one shard is added to the index, and
then

* **update**: ``retrieval_state.update`` (stored dense lists, the new shard searched alone
  and merged in; the lexical side searched again with today's frequencies) and
  ``verify_candidates(known=...)`` (only passes the store lacks forwarded), then the keep
  decision over all rows;
* **scratch**: the same lake retrieved and verified with nothing stored.

Reported per N: forward tokens of each, the forward tokens of the new shard's own (root,
chunk) pairs (chunk plus root tokens of each pass: what no method can avoid), passes and
rows forwarded, wall time of each, the share of anchors whose top-K differs from the
scratch run's, and whether verification and the keep decision agree on the rows both have.
"Moved" pairs are old chunks that became candidates because the new documents moved the
lake's word frequencies (the lexical side): a run from scratch has them too, so the update
must forward them; they are what the update forwards beyond the new shard's own pairs.
The baseline of the ratio is the scratch run, measured in the same process.

Time: the scratch verification dominates (about 250 tokens/s on 2 CPU cores); the update's
cost follows the new shard's rows, so its share falls as 1/N while the scratch run's does
not. At paper scale the same ratio applies per root shard: bench.cost prints it.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import pyarrow as pa

from bench.common import Record, device_name, report
from bench.planted import _token_table
from bench.realtext import CACHE, build, chunk_all, load_real, prepare

RESULTS_NAME = "incremental"


def _log(msg: str) -> None:
    print(msg, flush=True)


def deal(pool_docs: list[str], n_shards: int) -> list[list[str]]:
    """Pool documents dealt out to ``n_shards`` shards in turn (sorted ids: every shard a mix
    of articles, as a web crawl's shards are)."""
    shards: list[list[str]] = [[] for _ in range(n_shards)]
    for i, d in enumerate(sorted(pool_docs)):
        shards[i % n_shards].append(d)
    return shards


def _pass_tokens(pairs, doc_tokens, chunk_tokens) -> int:
    """Forward tokens of the passes ``[chunk; root]`` of ``pairs`` (roots that fit the
    window beside a chunk: one segment each)."""
    return int(sum(len(chunk_tokens[c]) + len(doc_tokens[d]) for d, c in pairs))


def run_point(n: int, ctx: dict, log=_log) -> dict:
    """One lake of ``n`` shards plus one: scratch, add, update, scratch again."""
    from lakehouse import retrieval_state
    from lakehouse.dependencies import decide
    from lakehouse.retrieval import retrieve
    from lakehouse.vector_index import VectorIndex
    from models.verification import verify_candidates

    config, shards, table = ctx["config"], ctx["shards"][:n + 1], ctx["table"]
    anchors, qv, own, roots = ctx["anchors"], ctx["qv"], ctx["own"], ctx["root_texts"]
    doc_tokens, chunk_tokens = ctx["doc_tokens"], ctx["chunk_tokens"]
    vs = config.verification
    shard_of = {k: i for i, docs in enumerate(shards) for d in docs
                for k in ctx["chunks_of"][d]}

    def verify(cands, known):
        t0 = time.perf_counter()
        v = verify_candidates(ctx["model"], ctx["scoring"], cands, doc_tokens, chunk_tokens,
                              vs, chunk_reserve=config.chunking.size, known=known,
                              identity="bench")
        return v, time.perf_counter() - t0

    def cands_of(t: pa.Table) -> dict[str, list]:
        return {k: t[k].to_pylist() for k in t.column_names}

    def search(index, state):
        t0 = time.perf_counter()
        up, new_state = retrieval_state.update(state, anchors, qv, own, index,
                                               config.retrieval, roots, "bench")
        t, _ = retrieve(anchors, qv, own, index, config.retrieval, roots, searched=up.searched)
        return up, new_state, cands_of(t), time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        index = VectorIndex(f"{tmp}/index", ctx["dim"], config.index)
        index.sync({f"pool/{i:04d}": "v1" for i in range(n)},
                   lambda key: table(shards[int(key.split("/")[1])]))
        _, state, first, _ = search(index, None)
        log(f"N={n}: {index.count()} chunks in {n} shards; first run: "
            f"{len(first['doc_id'])} candidate rows ...")
        v0, s0 = verify(first, {})
        log(f"N={n}: first run verified {len(v0.passes)} passes, {v0.forward_tokens:,} "
            f"tokens in {s0:.0f} s")
        known = {p.key: p for p in v0.passes}
        index.sync({f"pool/{i:04d}": "v1" for i in range(n + 1)},
                   lambda key: table(shards[int(key.split("/")[1])]))
        log(f"N={n}: {index.count()} chunks in {n + 1} shards; update ...")
        up, _, upd, r_up = search(index, state)
        v_up, s_up = verify(upd, known)
        t0 = time.perf_counter()
        d_up, _ = decide(ctx["inputs"](upd), v_up.rows, v_up.passes, vs)
        s_up += r_up + time.perf_counter() - t0
        log(f"N={n}: scratch ...")
        full = retrieval_state.update(None, anchors, qv, own, index, config.retrieval, roots,
                                      "bench")[0]
        t0 = time.perf_counter()
        scratch = cands_of(retrieve(anchors, qv, own, index, config.retrieval, roots,
                                    searched=full.searched)[0])
        r_s = time.perf_counter() - t0
        v_s, s_s = verify(scratch, {})
        t0 = time.perf_counter()
        d_s, _ = decide(ctx["inputs"](scratch), v_s.rows, v_s.passes, vs)
        s_s += r_s + time.perf_counter() - t0 + full.searched.dense_s + full.searched.lexical_s
    pairs_up = set(zip(upd["doc_id"], upd["chunk_id"], strict=True))
    new_pairs = {(d, c) for d, c in pairs_up if shard_of[c] == n}
    new_tokens = _pass_tokens(new_pairs, doc_tokens, chunk_tokens)
    # pairs of old shards' chunks that are candidates now and were not before: the lexical
    # side's frequencies moved with the new documents (a search from scratch has them too)
    old_pairs = set(zip(first["doc_id"], first["chunk_id"], strict=True))
    moved = {p for p in pairs_up - old_pairs if shard_of[p[1]] != n}

    def topk(c):
        out: dict = {}
        for d, p, ck in zip(c["doc_id"], c["position"], c["chunk_id"], strict=True):
            out.setdefault((d, p), set()).add(ck)
        return out

    a_up, a_s = topk(upd), topk(scratch)
    changed = sum(a_up.get(a) != a_s.get(a) for a in set(a_up) | set(a_s))
    # verification and the decision on the rows both runs have
    ru = {(r["doc_id"], r["position"], r["chunk_id"]): r for r in d_up.to_pylist()}
    rs = {(r["doc_id"], r["position"], r["chunk_id"]): r for r in d_s.to_pylist()}
    common = sorted(set(ru) & set(rs))
    same_keep = all(ru[k]["verified"] == rs[k]["verified"] for k in common)
    diff = max((abs((ru[k]["h_prime"] or 0) - (rs[k]["h_prime"] or 0)) for k in common),
               default=0.0)
    return {"N": n, "anchors": len(a_s), "scratch_rows": len(scratch["doc_id"]),
            "scratch_passes": len(v_s.passes), "scratch_tokens": v_s.forward_tokens,
            "scratch_s": s_s, "update_rows": len(upd["doc_id"]),
            "update_passes_forwarded": len(v_up.passes) - v_up.reused_passes,
            "update_tokens": v_up.forward_tokens, "update_s": s_up,
            "update_retrieval_s": r_up, "search": up.kind, "search_reason": up.reason,
            "new_pairs": len(new_pairs), "new_pair_tokens": new_tokens,
            "moved_pairs": len(moved),
            "moved_pair_tokens": _pass_tokens(moved, doc_tokens, chunk_tokens),
            "new_pair_share": len(new_pairs) / max(len(pairs_up), 1),
            "tokens_vs_new": v_up.forward_tokens / new_tokens if new_tokens else
            (1.0 if v_up.forward_tokens == 0 else float("inf")),
            "anchors_topk_changed": changed / max(len(a_s), 1),
            "rows_compared": len(common), "same_keep_decision": same_keep,
            "max_h_prime_diff": diff,
            "kept_update": int(sum(r["verified"] for r in ru.values())),
            "kept_scratch": int(sum(r["verified"] for r in rs.values()))}


def setup(roots: int, max_words: int, seed: int, log=_log) -> dict:
    """The corpus, the roots' anchors and query vectors, every chunk and its vector."""
    import pickle

    from lakehouse.anchors import anchor_table
    from lakehouse.dependencies import DecideInputs
    from models.embedding import embed_texts
    from models.registry import load_embedder, load_scorer
    from models.scoring import ScoringConfig
    from orchestration.config import load_config

    config = load_config(None)
    model, tok = load_scorer(config.models.scorer)
    emb = load_embedder(config.models.embedder)
    real = load_real("wikipedia", max_words)
    st = build(real, "root", roots, seed)
    c = st.corpus
    log(f"{len(c.roots)} roots, {len(c.pool)} pool parts; scoring the roots ...")
    prep = prepare(c, model, tok)
    anchors, _ = anchor_table(prep.profiles, _token_table(prep.tokens, c.scored), c.texts,
                              prep.recurring, config.anchors)
    anchors = anchors.select(["doc_id", "position", "query"])
    qv = embed_texts(emb, anchors["query"].to_pylist())
    chunks = chunk_all(prep, sorted(c.texts), config.chunking.size)
    vec_file = CACHE / f"vectors-{config.models.embedder}.pkl"
    vectors = pickle.loads(vec_file.read_bytes()) if vec_file.exists() else {}
    new = [k for k in chunks if k not in vectors]
    if new:
        log(f"embedding {len(new):,} chunks ...")
        vectors.update(zip(new, embed_texts(emb, [chunks[k]["text"] for k in new]),
                           strict=True))
        CACHE.mkdir(parents=True, exist_ok=True)
        vec_file.with_suffix(".tmp").write_bytes(pickle.dumps(vectors))
        vec_file.with_suffix(".tmp").replace(vec_file)
    dim = qv.shape[1]
    chunks_of: dict[str, list[str]] = {}
    for k, v in chunks.items():
        if not v["recurring"]:
            chunks_of.setdefault(v["doc"], []).append(k)

    def table(docs: list[str]) -> pa.Table:
        keys = [k for d in docs for k in chunks_of.get(d, [])]
        return pa.table({
            "chunk_id": keys, "doc_id": [chunks[k]["doc"] for k in keys],
            "corpus": ["pool"] * len(keys),
            "text": pa.array([chunks[k]["text"] for k in keys], pa.large_string()),
            "vector": pa.FixedSizeListArray.from_arrays(
                pa.array(np.stack([vectors[k] for k in keys]).ravel() if keys
                         else np.zeros(0, np.float32)), dim)})

    own = table(list(c.roots)).select(["doc_id", "chunk_id", "vector"])
    s = config.scoring
    doc_tokens = {d: np.asarray(prep.tokens[d][0], np.int64) for d in c.roots}
    chunk_tokens = {k: v["ids"] for k, v in chunks.items()}

    def inputs(cands):
        used = set(cands["chunk_id"])
        return DecideInputs(cands, {d: prep.tokens[d][0] for d in c.roots},
                            {k: chunk_tokens[k] for k in used}, c.texts,
                            {d: (prep.tokens[d][1], prep.tokens[d][2]) for d in c.roots},
                            {k: chunks[k]["text"] for k in used}, prep.recurring,
                            prep.doc_frequency, len(c.texts))

    return {"config": config, "model": model, "dim": dim, "anchors": anchors, "qv": qv,
            "own": own, "root_texts": {d: c.texts[d] for d in c.roots}, "table": table,
            "doc_tokens": doc_tokens, "chunk_tokens": chunk_tokens, "chunks_of": chunks_of,
            "inputs": inputs, "pool": list(c.pool),
            "scoring": ScoringConfig(window=s.window, overlap=s.overlap,
                                     token_budget=s.token_budget, block_size=s.block_size)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", default="8,32,128", help="pool shard counts N")
    ap.add_argument("--roots", type=int, default=3)
    ap.add_argument("--max-words", type=int, default=300, help="words per article part")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    points = [int(x) for x in args.points.split(",")]
    ctx = setup(args.roots, args.max_words, args.seed)
    ctx["shards"] = deal(ctx["pool"], max(points) + 1)
    results = []
    for n in points:
        # the shards of this lake: the first n, and one more added
        r = run_point(n, {**ctx, "shards": ctx["shards"]})
        results.append(r)
        _log(f"N={n}: update {r['update_tokens']:,} tokens ({r['update_passes_forwarded']} "
             f"passes, new shard's own pairs {r['new_pair_tokens']:,} tokens, ratio "
             f"{r['tokens_vs_new']:.2f}) in {r['update_s']:.1f} s; scratch "
             f"{r['scratch_tokens']:,} tokens ({r['scratch_passes']} passes) in "
             f"{r['scratch_s']:.1f} s; top-K changed at {r['anchors_topk_changed']:.1%} of "
             f"anchors; same keep decision: {r['same_keep_decision']}")
    print("\n| N | update tokens | new shard's pairs' tokens | moved pairs' tokens | ratio | "
          "passes forwarded (update / scratch) | update s | scratch s | new pairs' share | "
          "top-K changed | same decisions |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['N']} | {r['update_tokens']:,} | {r['new_pair_tokens']:,} | "
              f"{r['moved_pair_tokens']:,} | "
              f"{r['tokens_vs_new']:.2f} | {r['update_passes_forwarded']} / "
              f"{r['scratch_passes']} | {r['update_s']:.1f} | {r['scratch_s']:.1f} | "
              f"{r['new_pair_share']:.2f} | {r['anchors_topk_changed']:.1%} | "
              f"{r['same_keep_decision']} ({r['rows_compared']} rows) |")
    recs = []
    for r in results:
        recs.append(Record(f"N={r['N']}: update forward tokens / new pairs' tokens",
                           r["tokens_vs_new"], float(r["scratch_tokens"]),
                           r["update_tokens"] / max(r["scratch_tokens"], 1), "ratio",
                           "<= 1.5", bool(r["tokens_vs_new"] <= 1.5), device_name(), r))
        recs.append(Record(f"N={r['N']}: anchors whose top-K changed vs scratch",
                           r["anchors_topk_changed"], float("nan"), float("nan"),
                           "fraction", "<= 0.02", bool(r["anchors_topk_changed"] <= 0.02),
                           device_name(), r))
    report(RESULTS_NAME, recs)


if __name__ == "__main__":
    main()
