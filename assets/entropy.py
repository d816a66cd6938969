"""`entropy_profiles` and `anchors`: EntropyLong step 1 on the root documents of a shard."""

import dagster as dg
import numpy as np
import pyarrow as pa

from assets.common import image, load_configured_scorer
from assets.recurring import recurring_set
from lakehouse import tables
from lakehouse.anchors import anchor_table
from lakehouse.corpora import file_sha256
from lakehouse.plots import histogram_png
from lakehouse.recurring import recurring_masks
from models.entropy_profiles import entropy_profiles as score_profiles
from models.registry import resolve_scorer
from models.scoring import max_entropy
from orchestration.automation import FOLLOW_INPUTS, follow_changes
from orchestration.lake_assets import StageContext, lake_asset
from orchestration.partitions import TRANSIENT_RETRY

ENTROPY_CHECK = "entropy_in_range"
SCORER_SETTINGS = ["models.scorer", "scoring.window", "scoring.overlap", "scoring.dtype",
                   "scoring.bos"]  # what changes the scores (not batch sizes or device)


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
    partitions="root_shards", settings=["anchors", "recurring"], group="entropy",
    reads={"entropy_profiles": "shard", "tokenized_docs": "shard", "corpus_shards": "shard",
           "recurring_text": "all"},
    kinds=["parquet", "python"],
    automation=follow_changes(("recurring_text",),
                              ("entropy_profiles", "tokenized_docs", "corpus_shards")),
    description="Positions another document may explain, with the text of their retrieval "
                "query: `anchors.rule` surprise (words whose summed gold NLL is above mean + "
                "alpha * std of the document's words) or entropy (the paper's H > mean + "
                "alpha * std); none inside text that recurs across documents.",
)
def anchors(ctx: StageContext):
    prof = ctx.shard_table("entropy_profiles", ["doc_id", "entropy", "nll", "mean", "std"])
    toks = ctx.shard_table("tokenized_docs", ["doc_id", "char_start", "char_end"])
    docs = ctx.shard_table("corpus_shards", ["doc_id", "text"])
    texts = dict(zip(docs["doc_id"].to_pylist(), docs["text"].to_pylist(), strict=True))
    masks = recurring_masks(toks, texts, recurring_set(ctx), ctx.settings.recurring)
    table, stats = anchor_table(prof, toks, texts, masks, ctx.settings.anchors)
    path = ctx.write_shard(table)
    ctx.log.info(f"{ctx.partition_key}: {table.num_rows} anchors in {prof.num_rows} docs, "
                 f"{stats.get('anchors_per_1k_tokens', 0):.1f} per 1K tokens")
    meta = {k: v for k, v in stats.items() if isinstance(v, int | float | str)}
    meta.update({"dagster/row_count": table.num_rows, "path": dg.MetadataValue.path(path)})
    # the file's hash: retrieval follows anchors that changed, not every re-run of them
    return dg.MaterializeResult(data_version=dg.DataVersion(file_sha256(path)[0][:16]),
                                metadata=meta)
