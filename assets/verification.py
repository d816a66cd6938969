"""`verified_dependencies`: EntropyLong step 3, verification and the keep decision."""

import time

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from assets.common import configured_scoring, image, load_configured_scorer
from assets.entropy import SCORER_SETTINGS
from assets.recurring import recurring_set, term_frequency
from lakehouse import pass_store
from lakehouse.dependencies import DecideInputs, decide
from lakehouse.plots import split_histogram_png
from lakehouse.recurring import recurring_masks
from models.verification import VerifySettings, verify_candidates
from orchestration.automation import follow_only
from orchestration.lake_assets import (
    PLANTED_GROUND_TRUTH,
    StageContext,
    lake_asset,
    settings_fingerprint,
)
from orchestration.partitions import TRANSIENT_RETRY

DI_CHECK = "delta_i_in_range"
# what shapes a (root, chunk) pass besides the tokens: the pass store's keys hash these
PASS_SETTINGS = [*SCORER_SETTINGS, "verification.positions", "chunking.size"]


def passes_path(ctx: StageContext) -> str:
    """The shard's pass store (lakehouse.pass_store), under the asset's folder; the leading
    underscore keeps it out of the table's Parquet datasets and SQL views."""
    corpus, shard = ctx.corpus_shard
    return ctx.output_path("_passes", corpus, f"{shard}.parquet")


def _chunks(ctx: StageContext, chunk_ids: list[str]) -> tuple[dict, dict]:
    """Token ids and texts of the given chunks, wherever in the lake they live."""
    t = ctx.lake_dataset("chunks").to_table(
        columns=["chunk_id", "input_ids", "text"],
        filter=ds.field("chunk_id").isin(pa.array(sorted(set(chunk_ids)), pa.string())))
    ids = t["chunk_id"].to_pylist()
    tokens = {c: np.asarray(i, np.int64) for c, i in zip(ids, t["input_ids"].to_pylist(),
                                                         strict=True)}
    missing = sorted(set(chunk_ids) - set(ids))
    if missing:
        raise FileNotFoundError(f"{len(missing)} candidate chunks not found under "
                                f"{ctx.input_path('chunks')}, e.g. {missing[0]}")
    return tokens, dict(zip(ids, t["text"].to_pylist(), strict=True))


@lake_asset(
    partitions="root_shards",
    settings=["verification", "recurring", "chunking.size", *SCORER_SETTINGS],
    step="gpu", pool="gpu", group="verification", kinds=["pytorch", "parquet"],
    reads={"retrieval_candidates": "shard", "tokenized_docs": "shard", "corpus_shards": "all",
           "chunks": "all", "recurring_text": "all", "term_frequencies": "all",
           PLANTED_GROUND_TRUTH: "all"},
    retry=TRANSIENT_RETRY, automation=follow_only("retrieval_candidates"),
    checks=[(DI_CHECK, "H and H' finite and >= 0, dI <= 1 where scored", True)],
    description="One pass per (document, chunk) over [chunk; document] (long documents in "
                "segments beside the chunk), H and H' at every position, and the keep "
                "decision (`verification.rule`: span, whether the chunk removes most of the "
                "NLL of rare words the root cannot predict; or the paper's dI > epsilon); "
                "rows that only copy the root's own text (or text recurring across "
                "documents) are classed `copy` and, by default, dropped. Passes are stored by "
                "what they depend on (`_passes/`): a re-run forwards only the pairs it lacks "
                "(a new pool shard's chunks), then re-decides over all rows.",
)
def verified_dependencies(ctx: StageContext):
    cfg = ctx.settings.verification
    cands = ctx.shard_table("retrieval_candidates")
    toks = ctx.shard_table("tokenized_docs", ["doc_id", "input_ids", "char_start", "char_end"])
    roots = set(cands["doc_id"].to_pylist())
    toks = toks.filter(pa.array([d in roots for d in toks["doc_id"].to_pylist()], pa.bool_()))
    docs = ctx.lake_dataset("corpus_shards").to_table(
        columns=["doc_id", "text"], filter=ds.field("doc_id").isin(pa.array(sorted(roots),
                                                                             pa.string())))
    texts = dict(zip(docs["doc_id"].to_pylist(), docs["text"].to_pylist(), strict=True))
    doc_tokens = {d: np.asarray(i, np.int64) for d, i in zip(
        toks["doc_id"].to_pylist(), toks["input_ids"].to_pylist(), strict=True)}
    offsets = {d: (np.asarray(s, np.int64), np.asarray(e, np.int64)) for d, s, e in zip(
        toks["doc_id"].to_pylist(), toks["char_start"].to_pylist(),
        toks["char_end"].to_pylist(), strict=True)}
    chunk_tokens, chunk_texts = _chunks(ctx, cands["chunk_id"].to_pylist())
    frequency, n_docs = term_frequency(ctx)
    columns = {c: cands[c].to_pylist() for c in cands.column_names}
    inputs = DecideInputs(columns, doc_tokens, chunk_tokens, texts, offsets, chunk_texts,
                          recurring_masks(toks, texts, recurring_set(ctx), ctx.settings.recurring),
                          frequency, n_docs)
    rows, passes, forward, reuse = {}, [], 0, {}
    if cfg.mode == "on" and cands.num_rows:
        known = pass_store.load(passes_path(ctx)) if cfg.reuse else {}
        scoring = configured_scoring(ctx.settings)
        start = time.perf_counter()
        # the scorer is loaded only if a pass must be forwarded (not when all are stored)
        v = verify_candidates(lambda: load_configured_scorer(ctx.settings)[0], scoring,
                              columns, doc_tokens, chunk_tokens,
                              VerifySettings(positions=cfg.positions,
                                             prefix_cache=cfg.prefix_cache),
                              chunk_reserve=ctx.settings.chunking.size, known=known,
                              identity=settings_fingerprint(ctx.settings, PASS_SETTINGS))
        rows, passes, forward = v.rows, v.passes, v.forward_tokens
        elapsed = time.perf_counter() - start
        reuse = {"passes_forwarded": len(passes) - v.reused_passes,
                 "passes_reused": v.reused_passes, "baselines_reused": v.reused_baselines}
        ctx.log.info(f"{ctx.partition_key}: {cands.num_rows} (anchor, chunk) rows in "
                     f"{len(passes)} (root, chunk) passes, {v.reused_passes} carried over, "
                     f"{v.pair_passes} forward sequences, {forward} tokens in {elapsed:.1f} s "
                     f"({forward / max(elapsed, 1e-9):,.0f} tokens/s)")
    table, stats = decide(inputs, rows, passes, cfg, ctx.ground_truth() or None)
    if passes:  # before the rows: a run killed between the two re-forwards nothing
        pass_store.save(passes, passes_path(ctx))
    path = ctx.write_shard(table)
    sample = stats.pop("sample_markdown", "")
    meta = {k: v for k, v in stats.items() if isinstance(v, int | float | str | bool)}
    meta.update(reuse)
    meta.update({"forward_tokens": forward, "sample": dg.MetadataValue.md(sample or "(none)"),
                 "dagster/row_count": table.num_rows, "path": dg.MetadataValue.path(path)})
    di = np.array([np.nan if x is None else x for x in table["delta_i"].to_pylist()], float)
    kept = np.array(table["verified"].to_pylist(), bool)
    if np.isfinite(di).any():
        meta["delta_i_histogram"] = image(split_histogram_png(
            di, kept, ("verified", "rejected"), f"{ctx.partition_key}: dI over (anchor, chunk) "
            "rows", "relative information gain dI"), "dI histogram")
    yield dg.MaterializeResult(metadata=meta)
    h2 = np.array([np.nan if x is None else x for x in table["h_prime"].to_pylist()], float)
    ok = np.isfinite(h2) & np.isfinite(di)
    yield dg.AssetCheckResult(check_name=DI_CHECK, metadata={"rows": table.num_rows,
                                                             "scored": int(ok.sum())},
                              passed=bool(np.all((h2[ok] >= -1e-4) & (di[ok] <= 1 + 1e-6))))
