"""`verified_dependencies`: EntropyLong step 3, entropy-reduction verification."""

import time

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from assets.common import image, load_configured_scorer
from assets.entropy import SCORER_SETTINGS
from lakehouse import tables
from lakehouse.dependencies import relative_gain, verified
from lakehouse.planted_eval import pair_quality, planted_token_spans, span_quality
from lakehouse.plots import split_histogram_png
from models.verification import group_pairs, verify_grouped
from orchestration.automation import follow_only
from orchestration.lake_assets import PLANTED_GROUND_TRUTH, StageContext, lake_asset
from orchestration.partitions import TRANSIENT_RETRY

DI_CHECK = "delta_i_in_range"


def _chunk_tokens(ctx: StageContext, chunk_ids: list[str]) -> dict[str, np.ndarray]:
    """Token ids of the given chunks, wherever in the lake they live."""
    if not chunk_ids:
        return {}
    t = ctx.lake_dataset("chunks").to_table(
        columns=["chunk_id", "input_ids"],
        filter=ds.field("chunk_id").isin(pa.array(sorted(set(chunk_ids)), pa.string())))
    return {c: np.asarray(i, np.int64) for c, i in
            zip(t["chunk_id"].to_pylist(), t["input_ids"].to_pylist(), strict=True)}


def _planted_quality(truth: list[dict], toks: pa.Table, rows: list[dict], top: int) -> dict:
    """Precision/recall of this shard's kept rows against any planted ground truth.

    Two rules side by side (the verified flag, and the paper's ablation: the top ``top``
    candidates per anchor kept unverified) at two levels (planted spans, and (root, chunk
    document) pairs), as in the catalog view `planted_dependency_quality`. Empty when no root
    here has ground truth.
    """
    roots = {r["doc_id"] for r in rows}
    truth = [t for t in truth if t["root_doc_id"] in roots]
    if not truth:
        return {}
    offsets = {t["doc_id"]: (np.asarray(t["char_start"]), np.asarray(t["char_end"]))
               for t in toks.select(["doc_id", "char_start", "char_end"]).to_pylist()
               if t["doc_id"] in roots}
    spans = planted_token_spans(truth, offsets)
    pairs = {(t["root_doc_id"], t["source_doc_id"]) for t in truth}
    out = {}
    for rule, kept in (("verified", [r for r in rows if r["verified"] and r["mode"] == "on"]),
                       (f"top{top}_unverified", [r for r in rows if r["rank"] <= top])):
        sq = span_quality(spans, [(r["doc_id"], r["position"], r["chunk_doc_id"])
                                  for r in kept])
        pq = pair_quality(pairs, [(r["doc_id"], r["chunk_doc_id"]) for r in kept])
        out[f"planted_{rule}_span_precision"] = sq.precision
        out[f"planted_{rule}_span_recall"] = sq.recall
        out[f"planted_{rule}_pair_precision"] = pq.precision
        out[f"planted_{rule}_pair_recall"] = pq.recall
    return out


@lake_asset(
    partitions="root_shards", settings=["verification", *SCORER_SETTINGS], step="gpu",
    pool="gpu", group="verification", kinds=["pytorch", "parquet"],
    reads={"retrieval_candidates": "shard", "anchors": "shard", "tokenized_docs": "shard",
           "chunks": "all", PLANTED_GROUND_TRUTH: "all"},
    retry=TRANSIENT_RETRY, automation=follow_only("retrieval_candidates"),
    checks=[(DI_CHECK, "H and H' finite and >= 0, dI <= 1", True)],
    description="H' at every anchor with each candidate chunk prepended (one pass per "
                "(document, chunk)), dI = (H - H')/H and the keep decision dI > epsilon.",
)
def verified_dependencies(ctx: StageContext):
    settings = ctx.settings
    vcfg = settings.verification
    cands = ctx.shard_table("retrieval_candidates").to_pylist()
    anc = ctx.shard_table("anchors", ["doc_id", "position", "entropy", "nll"]).to_pylist()
    before = {(a["doc_id"], a["position"]): (a["entropy"], a["nll"]) for a in anc}
    n = len(cands)
    h = np.array([before[(c["doc_id"], c["position"])][0] for c in cands], np.float32)
    g = np.array([before[(c["doc_id"], c["position"])][1] for c in cands], np.float32)
    h2 = np.full(n, np.nan, np.float32)
    g2 = np.full(n, np.nan, np.float32)
    status = ["unverified"] * n
    toks = ctx.shard_table("tokenized_docs", ["doc_id", "input_ids", "char_start", "char_end"])
    if vcfg.mode == "on" and n:
        doc_ids = sorted({c["doc_id"] for c in cands})
        doc_tokens = dict(zip(toks["doc_id"].to_pylist(), toks["input_ids"].to_pylist(),
                              strict=True))
        chunk_names = sorted({c["chunk_id"] for c in cands})
        tokens_of = _chunk_tokens(ctx, chunk_names)
        missing = [c for c in chunk_names if c not in tokens_of]
        if missing:
            raise FileNotFoundError(f"{len(missing)} candidate chunks not found under "
                                    f"{ctx.input_path('chunks')}, e.g. {missing[0]}")
        doc_index = {d: i for i, d in enumerate(doc_ids)}
        chunk_index = {c: i for i, c in enumerate(chunk_names)}
        pairs = group_pairs([doc_index[c["doc_id"]] for c in cands],
                            [c["position"] for c in cands],
                            [chunk_index[c["chunk_id"]] for c in cands])
        model, cfg = load_configured_scorer(settings)
        start = time.perf_counter()
        scores, tokens = verify_grouped(
            model, [np.asarray(doc_tokens[d], np.int64) for d in doc_ids],
            [tokens_of[c] for c in chunk_names], pairs, cfg)
        elapsed = time.perf_counter() - start
        ctx.log.info(f"{ctx.partition_key}: {n} (anchor, chunk) rows in {len(pairs)} "
                         f"passes, {tokens} tokens in {elapsed:.1f} s "
                         f"({tokens / max(elapsed, 1e-9):,.0f} tokens/s)")
        row_of = {(c["doc_id"], c["position"], c["chunk_id"]): i for i, c in enumerate(cands)}
        for s in scores:
            d, ch = doc_ids[s.pair.doc], chunk_names[s.pair.chunk]
            for t, e, ll in zip(s.pair.positions, s.entropy, s.nll, strict=True):
                i = row_of[(d, int(t), ch)]
                h2[i], g2[i], status[i] = e, ll, s.status
    di = relative_gain(h, h2)
    if vcfg.mode == "on":
        keep = verified(di, vcfg.epsilon, g, g2, vcfg.correctness_aware)
    else:
        keep = np.array([c["rank"] <= vcfg.off_keep_top for c in cands], bool)
    rows = [{"doc_id": c["doc_id"], "position": c["position"], "chunk_id": c["chunk_id"],
             "chunk_doc_id": c["chunk_doc_id"], "rank": c["rank"], "h": float(h[i]),
             "h_prime": float(h2[i]), "delta_i": float(di[i]), "nll": float(g[i]),
             "nll_prime": float(g2[i]), "verified": bool(keep[i]), "epsilon": vcfg.epsilon,
             "mode": vcfg.mode, "status": status[i]} for i, c in enumerate(cands)]
    table = tables.from_rows(rows, tables.VERIFIED_DEPENDENCIES)
    path = ctx.write_shard(table)
    meta = {"rows": n, "verified": int(keep.sum()), "mode": vcfg.mode,
            "epsilon": vcfg.epsilon, "too_long": status.count("too_long"),
            "dagster/row_count": n, "path": dg.MetadataValue.path(path)}
    finite = np.isfinite(di)
    if finite.any():
        meta["mean_delta_i_verified"] = float(np.nanmean(di[keep])) if keep.any() else 0.0
        meta["delta_i_histogram"] = image(split_histogram_png(
            di, keep, ("verified", "rejected"),
            f"{ctx.partition_key}: dI over (anchor, chunk) rows",
            "relative information gain dI", vlines={"epsilon": vcfg.epsilon}), "dI histogram")
    meta.update(_planted_quality(ctx.ground_truth(), toks, rows, vcfg.off_keep_top))
    yield dg.MaterializeResult(metadata=meta)
    ok = status.count("ok")
    in_range = bool(np.all(h[:ok] >= -1e-4)) if vcfg.mode == "off" else bool(
        np.all((h2[finite] >= -1e-4) & (di[finite] <= 1 + 1e-6)))
    yield dg.AssetCheckResult(check_name=DI_CHECK, passed=in_range,
                              metadata={"rows": n, "scored": ok})
