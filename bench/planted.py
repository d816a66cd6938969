"""Stages 1-2 against the `planted` ground truth, with the real scorer and embedder.

Runs the asset graph (ingest, tokenize, entropy, anchors, chunks, embeddings, index,
retrieval) on the planted corpus in a temporary lake, then reports:
  * anchor enrichment: the anchor rate on planted-span tokens / the rate on other tokens;
  * recall@K of planted anchors: anchors inside planted spans whose candidates include a
    chunk of the true source document;
  * oracle recall@K: the same retrieval run from a query centred on the first token of every
    planted span, which separates retrieval quality from anchor selection.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow.parquet as pq

from bench.common import Record, device_name, report
from lakehouse.anchors import query_span, span_text
from lakehouse.demo import GROUND_TRUTH_FILE
from lakehouse.planted_eval import anchor_enrichment, planted_token_spans, source_recall
from lakehouse.retrieval import filter_hits
from orchestration.config import load_config

POOL = {"name": "pystdlib", "uri": "corpora/pystdlib", "format": "jsonl", "roles": ["pool"],
        "demo": {"kind": "pystdlib", "n_docs": 20, "max_chars": 3000, "n_shards": 1}}


def _lake_tables(lake: Path, asset: str) -> list[dict]:
    rows: list[dict] = []
    for f in sorted(lake.glob(f"{asset}/planted*/*.parquet")):
        rows.extend(pq.read_table(f).to_pylist())
    return rows


def measure(config_path: Path) -> dict:
    """Run the pipeline for ``config_path`` and measure it against the ground truth."""
    from lakehouse.demo import write_demo_corpus
    from models.embedding import embed_texts
    from models.registry import load_embedder
    from tests.test_pipeline import run_pipeline

    config = load_config(config_path)
    for spec in config.corpus_specs():
        write_demo_corpus(spec)
    run_pipeline(config_path, dg.DagsterInstance.ephemeral(), verify=False)
    lake = Path(config.lake)
    truth = pq.read_table(Path(config.corpus("planted").uri) / GROUND_TRUTH_FILE).to_pylist()
    toks = {r["doc_id"]: r for r in _lake_tables(lake, "tokenized_docs")}
    offsets = {d: (np.asarray(r["char_start"]), np.asarray(r["char_end"]))
               for d, r in toks.items()}
    spans = planted_token_spans(truth, offsets)
    anchors: dict[str, list[int]] = {}
    for a in _lake_tables(lake, "anchors"):
        anchors.setdefault(a["doc_id"], []).append(a["position"])
    enrich = anchor_enrichment(spans, {d: np.asarray(p) for d, p in anchors.items()},
                               {d: r["n_tokens"] for d, r in toks.items()})
    cands: dict[tuple[str, int], set[str]] = {}
    for c in _lake_tables(lake, "retrieval_candidates"):
        cands.setdefault((c["doc_id"], c["position"]), set()).add(c["chunk_doc_id"])
    planted_anchors, found = source_recall(spans, cands)

    # oracle queries: one per planted span, centred on its first token
    from assets.retrieval import open_index

    texts = {r["doc_id"]: r["text"] for r in _lake_tables(lake, "corpus_shards")}
    emb = _lake_tables(lake, "chunk_embeddings")
    own: dict[str, list[np.ndarray]] = {}
    for e in emb:
        own.setdefault(e["doc_id"], []).append(np.asarray(e["vector"], np.float32))
    cfg = config.anchors
    queries = []
    for s in spans:
        lo, hi = query_span(s.token_start, toks[s.root_doc_id]["n_tokens"], cfg.query_window,
                            cfg.query_mode)
        queries.append(span_text(texts[s.root_doc_id], *offsets[s.root_doc_id], lo, hi))
    model = load_embedder(config.models.embedder)
    qv = embed_texts(model, queries)
    index = open_index(config, qv.shape[1])
    k = config.retrieval.k
    hits = index.search(qv, 2 * k + 8)
    oracle = 0
    for s, h in zip(spans, hits, strict=True):
        f = filter_hits(s.root_doc_id, h, np.vstack(own[s.root_doc_id]), k,
                        config.retrieval.near_dup_cosine)
        oracle += s.source_doc_id in {c.chunk_doc_id for c in f.candidates}
    return {"alpha": cfg.alpha, "k": k, "enrichment": enrich, "planted_anchors": planted_anchors,
            "planted_anchor_source_found": found, "spans": len(spans), "oracle_found": oracle}


def measure_dependencies(config_path: Path) -> dict[tuple[str, str], dict]:
    """Run every stage through packing; (rule, level) -> row of planted_dependency_quality."""
    import duckdb

    from lakehouse.demo import write_demo_corpus
    from tests.test_pipeline import run_pipeline

    config = load_config(config_path)
    for spec in config.corpus_specs():
        write_demo_corpus(spec)
    run_pipeline(config_path, dg.DagsterInstance.ephemeral(), verify=True)
    con = duckdb.connect(config.catalog_path, read_only=True)
    cur = con.execute("SELECT * FROM planted_dependency_quality")
    cols = [d[0] for d in cur.description]
    return {(r[0], r[1]): dict(zip(cols, r, strict=True)) for r in cur.fetchall()}


def write_config(folder: Path, alpha: float = 2.0) -> Path:
    from tests.conftest import planted_corpora
    from tests.conftest import write_config as write

    return write(folder, [*planted_corpora(0, 12, 12), POOL], anchors={"alpha": alpha},
                 scoring={"window": 2048, "overlap": 512, "token_budget": 4096,
                          "block_size": 256})


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        m = measure(write_config(Path(tmp)))
    e = m["enrichment"]
    recall = m["planted_anchor_source_found"] / m["planted_anchors"] if m["planted_anchors"] \
        else float("nan")
    report("planted", [
        Record("anchor rate, planted tokens / other tokens", e.planted_anchor_rate,
               e.other_anchor_rate, e.ratio, "anchors/token", "ratio >= 3", e.ratio >= 3,
               device_name(), {"alpha": m["alpha"], "planted_tokens": e.planted_tokens,
                               "spans_with_anchor": e.spans_with_anchor, "spans": e.spans}),
        Record("recall@K of planted anchors (source found)", recall, float("nan"),
               float("nan"), "fraction", ">= 0.5", bool(recall >= 0.5), device_name(),
               {"k": m["k"], "planted_anchors": m["planted_anchors"]}),
        Record("oracle recall@K (query at every planted span)",
               m["oracle_found"] / m["spans"], float("nan"), float("nan"), "fraction",
               ">= 0.5", m["oracle_found"] / m["spans"] >= 0.5, device_name(),
               {"k": m["k"], "spans": m["spans"]}),
    ])


if __name__ == "__main__":
    main()
