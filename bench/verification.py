"""Grouped verification against one pass per (anchor, candidate), on real stage output.

Runs stages 1-2 (bench.planted's stage functions, SmolLM2 + MiniLM, no Dagster) on the
realistic planted corpus, takes the real anchors and retrieval candidates of the first
roots, and computes H' both ways on the same inputs: grouped (one pass per (document,
chunk), cut after the last anchor) and naive (one pass over [chunk; document up to the
anchor] per (anchor, candidate)). Reports forwarded tokens, wall time, the largest H'
difference, and what reading every position of the grouped pass costs on top (the span
rule's verify_candidates with positions: all).
"""

from __future__ import annotations

import time

import numpy as np

from bench.common import Record, device_name, report
from models.scoring import ScoringConfig
from models.verification import (
    VerifySettings,
    group_pairs,
    verify_candidates,
    verify_grouped,
    verify_naive,
)


def inputs(n_roots: int):
    """Real candidates of the first ``n_roots`` realistic roots (paper anchors)."""
    from bench.planted import VARIANTS, _models, load_corpus, prepare, stages

    model, tok, emb = _models()
    prep = prepare(load_corpus("realistic", n_roots=max(n_roots, 4)), model, tok)
    st = stages(prep, VARIANTS["before"], model, emb)
    roots = sorted(set(st.candidates["doc_id"]))[:n_roots]
    keep = [i for i, d in enumerate(st.candidates["doc_id"]) if d in roots]
    cands = {k: [v[i] for i in keep] for k, v in st.candidates.items()}
    chunk_names = sorted(set(cands["chunk_id"]))
    docs = [np.asarray(prep.tokens[d][0], np.int64) for d in roots]
    chunks = [st.inputs.chunk_tokens[c] for c in chunk_names]
    pairs = group_pairs([roots.index(d) for d in cands["doc_id"]], cands["position"],
                        [chunk_names.index(c) for c in cands["chunk_id"]])
    return model, docs, chunks, pairs, cands, prep, st


def main(n_roots: int = 3) -> None:
    model, docs, chunks, pairs, cands, prep, st = inputs(n_roots)
    cfg = ScoringConfig(window=8192, token_budget=4096, block_size=256)
    start = time.perf_counter()
    grouped, tok_grouped = verify_grouped(model, docs, chunks, pairs, cfg)
    t_grouped = time.perf_counter() - start
    start = time.perf_counter()
    naive, tok_naive = verify_naive(model, docs, chunks, pairs, cfg)
    t_naive = time.perf_counter() - start
    diff = max(float(np.max(np.abs(g.entropy - n.entropy)))
               for g, n in zip(grouped, naive, strict=True))
    doc_tokens = {d: np.asarray(prep.tokens[d][0], np.int64) for d in set(cands["doc_id"])}
    start = time.perf_counter()
    every = verify_candidates(model, cfg, cands, doc_tokens, st.inputs.chunk_tokens,
                              VerifySettings(positions="all"))
    t_all = time.perf_counter() - start
    params = {"roots": n_roots, "anchor_candidate_rows": len(cands["doc_id"]),
              "pairs": len(pairs), "max_abs_H_prime_diff": diff,
              "all_positions_forward_tokens": every.forward_tokens,
              "all_positions_baseline_tokens": every.baseline_tokens}
    report("verification", [
        Record("forward tokens, naive / grouped", tok_grouped, tok_naive,
               tok_naive / tok_grouped, "tokens", "ratio >= 5", tok_naive / tok_grouped >= 5,
               device_name(), params),
        Record("wall time, naive / grouped", t_grouped, t_naive, t_naive / t_grouped, "s",
               "ratio >= 3", t_naive / t_grouped >= 3, device_name(), params),
        Record("max |H'_grouped - H'_naive|", diff, 0.0, float("nan"), "nats", "<= 1e-3",
               diff <= 1e-3, device_name(), params),
        Record("wall time, every position / anchors only", t_all, t_grouped,
               t_all / t_grouped, "s", "ratio <= 2", t_all / t_grouped <= 2, device_name(),
               params),
    ])


if __name__ == "__main__":
    main()
