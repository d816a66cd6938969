"""Grouped verification against one pass per (anchor, candidate), on real stage output.

Runs stages 1-2 (bench.planted's stage functions, SmolLM2 + MiniLM, no Dagster) on the
realistic planted corpus, takes the real anchors and retrieval candidates of the first
roots, and computes H' both ways on the same inputs: grouped (one pass per (document,
chunk), cut after the last anchor) and naive (one pass over [chunk; document up to the
anchor] per (anchor, candidate)). Reports forwarded tokens, wall time, the largest H'
difference, and what reading every position of the grouped pass costs on top (the span
rule's verify_candidates with positions: all).

Shared prefixes: the stage (``verify_candidates``, anchors) with ``prefix_cache`` on and off.
On, passes that start with the same chunk (a chunk retrieved by several roots, or by several
segments of one root) run the chunk once and each root on its keys and values. Reported:
how many passes share each chunk, forward tokens and time both ways, the largest H'
difference, and the padding fraction of the pair passes' batches (padded slots / slots).
``python -m bench.verification [n_roots] [--shared-only]`` (the latter skips the naive
passes and writes bench/results/verification_shared.json).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from bench.common import Record, device_name, report
from models.scoring import ScoringConfig, Window, batches_by_budget
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


def padding_fraction(lengths: list[int], token_budget: int) -> float:
    """Padded slots over all slots when ``lengths`` are batched as the kernel batches them
    (longest first, rows x longest within the budget)."""
    slots = real = 0
    for b in batches_by_budget([Window(i, 0, n, 1) for i, n in enumerate(lengths)],
                               token_budget):
        slots += len(b) * (b[0].end - b[0].start)
        real += sum(w.end - w.start for w in b)
    return 1 - real / slots if slots else 0.0


def shared_prefix_records(model, cfg, cands, doc_tokens, chunk_tokens, repeats: int = 2
                          ) -> list[Record]:
    """The stage with and without the chunk's keys/values shared across its passes."""
    sharing: dict[str, set] = {}
    for d, c in zip(cands["doc_id"], cands["chunk_id"], strict=True):
        sharing.setdefault(str(c), set()).add(str(d))
    roots_per_chunk = np.array([len(v) for v in sharing.values()])
    runs: dict = {}
    for _ in range(repeats):  # interleaved, fastest of each: a shared machine's load drifts
        for cache, pack in ((False, False), (True, False), (True, True)):
            start = time.perf_counter()
            v = verify_candidates(model, replace(cfg, pack=pack), cands, doc_tokens,
                                  chunk_tokens,
                                  VerifySettings(positions="anchors", prefix_cache=cache))
            t = time.perf_counter() - start
            runs[cache, pack] = (v, min(t, runs.get((cache, pack), (None, t))[1]))
    (off, t_off), (on, t_on) = runs[False, False], runs[True, False]
    packed, t_packed = runs[True, True]
    diff = float(np.nanmax(np.abs(on.rows["h_prime"] - off.rows["h_prime"])))
    diff_packed = float(np.nanmax(np.abs(packed.rows["h_prime"] - off.rows["h_prime"])))
    pair_lengths = []
    for p in off.passes:
        pair_lengths.append(len(chunk_tokens[p.chunk_id]) + int(p.positions[-1]) + 1)
    params = {"chunks": len(sharing), "roots_per_chunk_mean": float(roots_per_chunk.mean()),
              "roots_per_chunk_max": int(roots_per_chunk.max()),
              "chunks_shared_by_2plus_roots": int((roots_per_chunk >= 2).sum()),
              "pair_passes": on.pair_passes, "baseline_tokens": on.baseline_tokens,
              "pair_tokens_off": off.forward_tokens - off.baseline_tokens,
              "pair_tokens_on": on.forward_tokens - on.baseline_tokens,
              "padding_fraction_pair_batches": padding_fraction(pair_lengths,
                                                                cfg.token_budget),
              "max_abs_H_prime_diff": diff, "max_abs_H_prime_diff_packed": diff_packed,
              "stage_s_grouped": t_off, "stage_s_shared": t_on, "stage_s_shared_packed": t_packed}
    pair_off, pair_on = params["pair_tokens_off"], params["pair_tokens_on"]
    return [
        Record("pair-pass tokens, grouped / shared prefix", pair_on, pair_off,
               pair_off / pair_on, "tokens", "reported", True, device_name(), params),
        Record("forward tokens incl. baselines, grouped / shared", on.forward_tokens,
               off.forward_tokens, off.forward_tokens / on.forward_tokens, "tokens",
               "reported", True, device_name(), params),
        Record("stage wall time, grouped / shared prefix", t_on, t_off, t_off / t_on, "s",
               "reported", True, device_name(), params),
        Record("max |H'_shared - H'_grouped|", diff, 0.0, float("nan"), "nats", "<= 1e-3",
               diff <= 1e-3, device_name(), params),
        Record("stage wall time, grouped / shared + packed", t_packed, t_off,
               t_off / t_packed, "s", "reported", True, device_name(), params),
        Record("max |H'_shared+packed - H'_grouped|", diff_packed, 0.0, float("nan"), "nats",
               "<= 1e-3", diff_packed <= 1e-3, device_name(), params),
    ]


def main(n_roots: int = 3, naive: bool = True) -> None:
    model, docs, chunks, pairs, cands, prep, st = inputs(n_roots)
    cfg = ScoringConfig(window=8192, token_budget=4096, block_size=256)
    doc_tokens = {d: np.asarray(prep.tokens[d][0], np.int64) for d in set(cands["doc_id"])}
    shared = shared_prefix_records(model, cfg, cands, doc_tokens, st.inputs.chunk_tokens)
    if not naive:  # the shared-prefix comparison alone (the naive passes take longest)
        report("verification_shared", shared)
        return
    start = time.perf_counter()
    grouped, tok_grouped = verify_grouped(model, docs, chunks, pairs, cfg)
    t_grouped = time.perf_counter() - start
    start = time.perf_counter()
    naive_scores, tok_naive = verify_naive(model, docs, chunks, pairs, cfg)
    t_naive = time.perf_counter() - start
    diff = max(float(np.max(np.abs(g.entropy - n.entropy)))
               for g, n in zip(grouped, naive_scores, strict=True))
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
        *shared,
    ])


if __name__ == "__main__":
    import sys

    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(int(args[0]) if args else 3, naive="--shared-only" not in sys.argv)
