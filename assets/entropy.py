"""`entropy_profiles` and `anchors`: EntropyLong step 1 on the root documents of a shard."""

import dagster as dg
import numpy as np
import pyarrow as pa

from assets.common import image, load_configured_scorer
from lakehouse import tables
from lakehouse.anchors import query_span, select_anchors, span_text
from lakehouse.plots import histogram_png
from models.entropy_profiles import entropy_profiles as score_profiles
from models.registry import resolve_scorer
from models.scoring import max_entropy
from orchestration.automation import FOLLOW_INPUTS
from orchestration.lake_assets import StageContext, lake_asset
from orchestration.partitions import TRANSIENT_RETRY

ENTROPY_CHECK = "entropy_in_range"
SCORER_SETTINGS = ["models.scorer", "scoring.window", "scoring.overlap", "scoring.dtype"]


@lake_asset(
    partitions="root_shards", reads={"tokenized_docs": "shard"}, settings=SCORER_SETTINGS,
    step="gpu", pool="gpu", group="entropy", kinds=["pytorch", "parquet"],
    automation=FOLLOW_INPUTS, retry=TRANSIENT_RETRY,
    checks=[(ENTROPY_CHECK, "entropies finite and within [0, ln V]; one profile per "
                            "document, of its token count", True)],
    description="Per-token full-vocabulary entropy and gold NLL of every root document "
                "(exact, fp32 reductions), with its mean and std.",
)
def entropy_profiles(ctx: StageContext):
    toks = ctx.shard_table("tokenized_docs", ["doc_id", "n_tokens", "input_ids"])
    model, cfg = load_configured_scorer(ctx.settings)
    model_id = resolve_scorer(ctx.settings.models.scorer).model_id
    ids = [np.asarray(x, dtype=np.int32) for x in toks["input_ids"].to_pylist()]
    prof = score_profiles(model, ids, cfg, progress=ctx.log.info)
    n = len(ids)
    table = pa.Table.from_pydict({
        "doc_id": toks["doc_id"], "n_tokens": toks["n_tokens"], "entropy": prof.entropy,
        "nll": prof.nll, "mean": prof.mean, "std": prof.std, "model_id": [model_id] * n,
        "window": [cfg.window] * n, "overlap": [cfg.overlap] * n},
        schema=tables.ENTROPY_PROFILES)
    path = ctx.write_shard(table)
    h = prof.all_entropies()
    meta = {"docs": n, "tokens": prof.tokens, "model_id": model_id, "dagster/row_count": n,
            "path": dg.MetadataValue.path(path)}
    if h.size:
        meta["entropy_mean"] = float(h.mean())
        meta["entropy_histogram"] = image(histogram_png(
            h, f"{ctx.partition_key}: token entropy ({h.size} tokens)", "entropy (nats)"),
            "entropy histogram")
    yield dg.MaterializeResult(metadata=meta)
    bound = max_entropy(model.config.vocab_size) + 1e-3
    in_range = bool(np.all(np.isfinite(h)) and np.all(h >= -1e-4) and np.all(h <= bound))
    yield dg.AssetCheckResult(check_name=ENTROPY_CHECK, passed=in_range,
                              metadata={"tokens": int(h.size), "ln_vocab": bound})


@lake_asset(
    partitions="root_shards", settings=["anchors"], group="entropy",
    reads={"entropy_profiles": "shard", "tokenized_docs": "shard", "corpus_shards": "shard"},
    kinds=["parquet", "python"], automation=FOLLOW_INPUTS,
    description="High-entropy positions (H > mean + alpha * std per document) with the text "
                "of their retrieval query.",
)
def anchors(ctx: StageContext):
    cfg = ctx.settings.anchors
    prof = ctx.shard_table("entropy_profiles", ["doc_id", "entropy", "nll", "mean", "std"])
    toks = ctx.shard_table("tokenized_docs", ["doc_id", "char_start", "char_end"])
    docs = ctx.shard_table("corpus_shards", ["doc_id", "text"])
    text_of = dict(zip(docs["doc_id"].to_pylist(), docs["text"].to_pylist(), strict=True))
    offsets = {d: (np.asarray(s, np.int64), np.asarray(e, np.int64)) for d, s, e in zip(
        toks["doc_id"].to_pylist(), toks["char_start"].to_pylist(),
        toks["char_end"].to_pylist(), strict=True)}
    rows: list[dict] = []
    no_anchor_docs = 0
    for doc_id, ent, nll, mean, std in zip(*(prof[c].to_pylist() for c in
                                            ("doc_id", "entropy", "nll", "mean", "std")),
                                           strict=True):
        h = np.asarray(ent, dtype=np.float32)
        g = np.asarray(nll, dtype=np.float32)
        tau = mean + cfg.alpha * std  # from the fp32 statistics, not the fp16 copy
        positions = select_anchors(h, tau, cfg.max_per_doc)
        no_anchor_docs += positions.size == 0
        starts, ends = offsets[doc_id]
        for t in positions:
            lo, hi = query_span(int(t), len(h), cfg.query_window, cfg.query_mode)
            rows.append({"doc_id": doc_id, "position": int(t), "entropy": float(h[t]),
                         "nll": float(g[t]), "threshold": tau, "query_mode": cfg.query_mode,
                         "query_start": lo, "query_end": hi,
                         "query": span_text(text_of[doc_id], starts, ends, lo, hi)})
    path = ctx.write_shard(tables.from_rows(rows, tables.ANCHORS))
    n_docs = prof.num_rows
    ctx.log.info(f"{ctx.partition_key}: {len(rows)} anchors in {n_docs} docs "
                 f"({no_anchor_docs} docs without any)")
    return dg.MaterializeResult(metadata={
        "anchors": len(rows), "docs": n_docs, "docs_without_anchors": int(no_anchor_docs),
        "anchors_per_doc": len(rows) / n_docs if n_docs else 0.0, "alpha": cfg.alpha,
        "query_mode": cfg.query_mode, "dagster/row_count": len(rows),
        "path": dg.MetadataValue.path(path)})
