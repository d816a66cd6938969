"""Grouped verification against one pass per (anchor, candidate), on real pipeline output.

Runs stages 1-2 on the planted corpus (SmolLM2, MiniLM) in a temporary lake, takes the real
anchors and retrieval candidates of the first roots, and computes H' both ways on the same
inputs: grouped (one pass per (document, chunk), cut after the last anchor) and naive (one
pass over [chunk; document up to the anchor] per (anchor, candidate)). Reports forwarded
tokens, wall time, and the largest H' difference.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from bench.common import Record, device_name, report
from bench.planted import _lake_tables, measure, write_config
from models.registry import load_scorer
from models.scoring import ScoringConfig
from models.verification import group_pairs, verify_grouped, verify_naive
from orchestration.config import load_config


def inputs(lake: Path, n_roots: int):
    toks = {r["doc_id"]: np.asarray(r["input_ids"], np.int64)
            for r in _lake_tables(lake, "tokenized_docs")}
    chunk_ids = {}
    for f in sorted((lake / "chunks").glob("*/*.parquet")):  # every corpus: the pool too
        t = pq.read_table(f, columns=["chunk_id", "input_ids"])
        for cid, ids in zip(t["chunk_id"].to_pylist(), t["input_ids"].to_pylist(),
                            strict=True):
            chunk_ids[cid] = np.asarray(ids, np.int64)
    cands = _lake_tables(lake, "retrieval_candidates")
    roots = sorted({c["doc_id"] for c in cands})[:n_roots]
    rows = [c for c in cands if c["doc_id"] in roots]
    chunk_names = sorted({c["chunk_id"] for c in rows})
    docs = [toks[d] for d in roots]
    chunks = [chunk_ids[c] for c in chunk_names]
    pairs = group_pairs([roots.index(c["doc_id"]) for c in rows], [c["position"] for c in rows],
                        [chunk_names.index(c["chunk_id"]) for c in rows])
    return docs, chunks, pairs, len(rows)


def main(n_roots: int = 3) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config_path = write_config(Path(tmp))
        measure(config_path)
        docs, chunks, pairs, n_rows = inputs(Path(load_config(config_path).lake), n_roots)
    model, _ = load_scorer("smollm2-135m")
    cfg = ScoringConfig(window=8192, token_budget=4096, block_size=256)
    start = time.perf_counter()
    grouped, tok_grouped = verify_grouped(model, docs, chunks, pairs, cfg)
    t_grouped = time.perf_counter() - start
    start = time.perf_counter()
    naive, tok_naive = verify_naive(model, docs, chunks, pairs, cfg)
    t_naive = time.perf_counter() - start
    diff = max(float(np.max(np.abs(g.entropy - n.entropy)))
               for g, n in zip(grouped, naive, strict=True))
    params = {"roots": n_roots, "anchor_candidate_rows": n_rows, "pairs": len(pairs),
              "max_abs_H_prime_diff": diff}
    report("verification", [
        Record("forward tokens, naive / grouped", tok_grouped, tok_naive,
               tok_naive / tok_grouped, "tokens", "ratio >= 5", tok_naive / tok_grouped >= 5,
               device_name(), params),
        Record("wall time, naive / grouped", t_grouped, t_naive, t_naive / t_grouped, "s",
               "ratio >= 3", t_naive / t_grouped >= 3, device_name(), params),
        Record("max |H'_grouped - H'_naive|", diff, 0.0, float("nan"), "nats", "<= 1e-3",
               diff <= 1e-3, device_name(), params),
    ])


if __name__ == "__main__":
    main()
