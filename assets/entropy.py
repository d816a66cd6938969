"""`entropy_profiles` and `anchors`: EntropyLong step 1 on the root documents of a shard."""

import time

import dagster as dg
import numpy as np
import pyarrow as pa

from assets.common import (
    image,
    load_configured_scorer,
    read_shard_table,
    shard_key,
    write_shard_table,
)
from lakehouse import tables
from lakehouse.anchors import adaptive_threshold, query_span, select_anchors, span_text
from lakehouse.plots import histogram_png
from models.registry import resolve_scorer
from models.scoring import max_entropy, score_sequences
from orchestration.k8s import op_tags
from orchestration.partitions import PER_SHARD_BACKFILL, TRANSIENT_RETRY, shards_partitions
from orchestration.resources import PipelineResource

ENTROPY_CHECK = "entropy_in_range"
DOCS_PER_STEP = 32  # documents scored between progress lines


@dg.asset(
    op_tags=op_tags("gpu"),
    partitions_def=shards_partitions, backfill_policy=PER_SHARD_BACKFILL,
    deps=["tokenized_docs"], group_name="entropy", retry_policy=TRANSIENT_RETRY,
    kinds={"pytorch", "parquet"}, pool="gpu",
    check_specs=[dg.AssetCheckSpec(ENTROPY_CHECK, asset="entropy_profiles", blocking=True,
                                   description="entropies finite and within [0, ln V]; one "
                                               "profile per document, of its token count")],
    description="Per-token full-vocabulary entropy and gold NLL of every root document "
                "(exact, fp32 reductions), with its adaptive threshold.",
)
def entropy_profiles(context: dg.AssetExecutionContext, pipeline: PipelineResource):
    corpus, shard = shard_key(context)
    settings = pipeline.settings
    toks = read_shard_table(pipeline, "tokenized_docs", corpus, shard,
                            ["doc_id", "n_tokens", "input_ids"])
    is_root = "root" in settings.roles(corpus)
    if not is_root:
        context.log.info(f"{corpus} is a pool-only corpus: no documents are scored")
        toks = toks.slice(0, 0)
    model_id = resolve_scorer(settings.models.scorer).model_id
    rows: dict[str, list] = {f.name: [] for f in tables.ENTROPY_PROFILES}
    all_h: list[np.ndarray] = []
    vocab = 0
    window = 0
    if toks.num_rows:
        model, cfg = load_configured_scorer(settings)
        vocab = model.config.vocab_size
        window = cfg.window
        ids = [np.asarray(x, dtype=np.int32) for x in toks["input_ids"].to_pylist()]
        total = sum(len(x) for x in ids)
        done, start = 0, time.perf_counter()
        for lo in range(0, len(ids), DOCS_PER_STEP):
            part = ids[lo:lo + DOCS_PER_STEP]
            for j, scores in enumerate(score_sequences(model, part, cfg)):
                th = adaptive_threshold(scores.entropy, settings.anchors.alpha)
                rows["doc_id"].append(toks["doc_id"][lo + j].as_py())
                rows["n_tokens"].append(len(part[j]))
                rows["entropy"].append(scores.entropy.astype(np.float16))
                rows["nll"].append(scores.nll.astype(np.float16))
                rows["mean"].append(th.mean)
                rows["std"].append(th.std)
                rows["threshold"].append(th.tau)
                all_h.append(scores.entropy[1:])
            done += sum(len(x) for x in part)
            rate = done / max(time.perf_counter() - start, 1e-9)
            context.log.info(f"scored {min(lo + DOCS_PER_STEP, len(ids))}/{len(ids)} docs, "
                             f"{done}/{total} tokens, {rate:,.0f} tokens/s")
    n = len(rows["doc_id"])
    rows["alpha"] = [settings.anchors.alpha] * n
    rows["model_id"] = [model_id] * n
    rows["window"] = [window] * n
    rows["overlap"] = [settings.scoring.overlap] * n
    table = pa.Table.from_pydict(rows, schema=tables.ENTROPY_PROFILES)
    path = write_shard_table(pipeline, "entropy_profiles", corpus, shard, table)

    h = np.concatenate(all_h) if all_h else np.zeros(0, np.float32)
    tokens = int(sum(rows["n_tokens"]))
    meta = {"docs": n, "tokens": tokens, "model_id": model_id, "root_corpus": is_root,
            "dagster/row_count": n, "path": dg.MetadataValue.path(path)}
    if h.size:
        meta["entropy_mean"] = float(h.mean())
        meta["mean_threshold"] = float(np.mean(rows["threshold"]))
        meta["entropy_histogram"] = image(histogram_png(
            h, f"{context.partition_key}: token entropy ({h.size} tokens)", "entropy (nats)",
            vlines={"mean threshold": float(np.mean(rows["threshold"]))}), "entropy histogram")
    yield dg.MaterializeResult(metadata=meta)
    bound = max_entropy(vocab) + 1e-3 if vocab else float("inf")
    in_range = bool(np.all(np.isfinite(h)) and np.all(h >= -1e-4) and np.all(h <= bound))
    yield dg.AssetCheckResult(check_name=ENTROPY_CHECK, passed=in_range,
                              metadata={"tokens": int(h.size), "ln_vocab": bound})


@dg.asset(
    op_tags=op_tags("cpu"),
    partitions_def=shards_partitions, backfill_policy=PER_SHARD_BACKFILL,
    deps=["entropy_profiles", "tokenized_docs"],
    group_name="entropy", kinds={"parquet", "python"},
    description="High-entropy positions (H > mean + alpha * std per document) with the text "
                "of their retrieval query.",
)
def anchors(context: dg.AssetExecutionContext, pipeline: PipelineResource):
    corpus, shard = shard_key(context)
    cfg = pipeline.settings.anchors
    prof = read_shard_table(pipeline, "entropy_profiles", corpus, shard,
                            ["doc_id", "entropy", "nll", "mean", "std"])
    toks = read_shard_table(pipeline, "tokenized_docs", corpus, shard,
                            ["doc_id", "char_start", "char_end"])
    docs = read_shard_table(pipeline, "corpus_shards", corpus, shard, ["doc_id", "text"])
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
        if positions.size == 0:
            no_anchor_docs += 1
        starts, ends = offsets[doc_id]
        for t in positions:
            lo, hi = query_span(int(t), len(h), cfg.query_window, cfg.query_mode)
            rows.append({"doc_id": doc_id, "position": int(t), "entropy": float(h[t]),
                         "nll": float(g[t]), "threshold": tau, "query_mode": cfg.query_mode,
                         "query_start": lo, "query_end": hi,
                         "query": span_text(text_of[doc_id], starts, ends, lo, hi)})
    table = tables.from_rows(rows, tables.ANCHORS)
    path = write_shard_table(pipeline, "anchors", corpus, shard, table)
    n_docs = prof.num_rows
    context.log.info(f"{context.partition_key}: {len(rows)} anchors in {n_docs} docs "
                     f"({no_anchor_docs} docs without any)")
    return dg.MaterializeResult(metadata={
        "anchors": len(rows), "docs": n_docs, "docs_without_anchors": no_anchor_docs,
        "anchors_per_doc": len(rows) / n_docs if n_docs else 0.0, "alpha": cfg.alpha,
        "query_mode": cfg.query_mode, "dagster/row_count": len(rows),
        "path": dg.MetadataValue.path(path)})
