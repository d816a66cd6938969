"""`distance_check`: dI at distance, a sample of packed dependencies re-scored where packing
put them (models.distance_check), beside the adjacent dI verification measured."""

from dataclasses import replace

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from assets.common import image, load_configured_scorer
from assets.packing import DEPENDENCIES_FILE
from lakehouse import tables
from lakehouse.packed_files import SEQUENCES
from lakehouse.plots import scatter_png
from lakehouse.storage import write_parquet
from models.distance_check import PackedDependency, sample, summary
from models.distance_check import distance_check as rescore_at_distance
from models.registry import resolve_scorer
from models.scoring import model_window
from orchestration.lake_assets import StageContext, lake_asset
from orchestration.partitions import TRANSIENT_RETRY

DATASET = "entropylong"  # the packed dataset with dependencies (packed_dataset)


@lake_asset(
    # the check feeds the scorer's whole window, so scoring.window does not change it
    reads={"packed_dataset": "all"},
    settings=["distance_check", "models.scorer", "scoring.dtype", "scoring.bos"], step="gpu",
    pool="gpu", group="packing", kinds=["pytorch", "parquet"], retry=TRANSIENT_RETRY,
    description="dI at distance: `distance_check.samples` packed dependencies (seeded draw "
                "among those whose chunk fits the scorer's window before the anchor) "
                "re-scored on the packed sequence itself, H at the anchor with and without "
                "the chunk's tokens and with the chunk moved right before its root (the "
                "control for distance), beside the adjacent dI of verification.",
)
def distance_check(ctx: StageContext):
    cfg = ctx.settings.distance_check
    deps = ctx.lake_dataset("packed_dataset", DEPENDENCIES_FILE).to_table()
    model, config = load_configured_scorer(ctx.settings)
    full = model_window(model)  # the whole window, not scoring.window's batching size
    config = replace(config, window=min(cfg.window or full, full))
    lead = int(config.bos_token_id is not None)
    window = config.window - lead
    # eligible: the chunk fits in the window before the anchor (assuming the span's BOS is
    # not counted; the exact start is decided below, on the row)
    start = np.maximum(deps["span_start"].to_numpy(),
                       deps["anchor_position"].to_numpy() + 1 - window)
    eligible = start <= deps["chunk_start"].to_numpy()
    picked = deps.take(pa.array(sample(eligible, cfg.samples, cfg.seed)))
    seq_ids = sorted(set(picked["seq_id"].to_pylist()))
    rows = ctx.lake_dataset("packed_dataset", SEQUENCES).to_table(
        columns=["seq_id", "input_ids"], filter=ds.field("seq_id").isin(pa.array(seq_ids)))
    row_of = {s: i for i, s in enumerate(rows["seq_id"].to_pylist())}
    sequences = [np.asarray(x, np.int64) for x in rows["input_ids"].to_pylist()]
    p = picked.to_pydict()
    items = [PackedDependency(row_of[s], a, c0, c1, at, at - t) for s, a, c0, c1, at, t in zip(
        p["seq_id"], p["span_start"], p["chunk_start"], p["chunk_end"], p["anchor_position"],
        p["position"], strict=True)]
    ctx.log.info(f"{DATASET}: {int(eligible.sum())} of {deps.num_rows} dependencies fit the "
                 f"window of {window}; scoring {len(items)}")
    out = rescore_at_distance(model, sequences, items, config, window)
    n = len(items)
    scorer_id = resolve_scorer(ctx.settings.models.scorer).model_id
    table = pa.Table.from_pydict({
        "dataset": [DATASET] * n, "seq_id": p["seq_id"], "root_doc_id": p["root_doc_id"],
        "chunk_id": p["chunk_id"], "position": p["position"],
        "anchor_position": p["anchor_position"], "distance": p["distance"],
        "layout": p["layout"], "context_tokens": out["context_tokens"],
        "h_with": out["h_with"], "h_without": out["h_without"], "nll_with": out["nll_with"],
        "nll_without": out["nll_without"], "delta_i_adjacent": p["delta_i"],
        "delta_i_at_distance": out["delta_i"], "h_moved": out["h_moved"],
        "delta_i_moved": out["delta_i_moved"], "status": out["status"],
        "scorer_id": [scorer_id] * n}, schema=tables.DISTANCE_CHECK)
    path = write_parquet(table, ctx.output_path(f"{DATASET}.parquet"))
    adjacent = np.asarray(p["delta_i"], np.float64)
    stats = summary(adjacent, out["delta_i"].astype(np.float64),
                    np.asarray(p["distance"], np.float64),
                    out["delta_i_moved"].astype(np.float64))
    stats.update(dependencies=deps.num_rows, fit_window=int(eligible.sum()),
                 beyond_window=int((~eligible).sum()), sampled=n, window=window,
                 tokens_forwarded=out["tokens"],
                 layout=",".join(sorted(set(deps["layout"].to_pylist()))))
    meta: dict = {"path": dg.MetadataValue.path(path), "scorer_id": scorer_id,
                  f"{DATASET}_summary": dg.MetadataValue.json(stats),
                  "dagster/row_count": n}
    ok = np.isfinite(out["delta_i"])
    if ok.any():
        meta[f"{DATASET}_scatter"] = image(scatter_png(
            np.asarray(p["distance"], np.float64)[ok],
            {"adjacent (verification)": adjacent[ok],
             "at distance (packed)": out["delta_i"][ok].astype(np.float64),
             "moved before its root": out["delta_i_moved"][ok].astype(np.float64)},
            f"{DATASET}: dI of sampled dependencies", "distance (tokens)", "dI"),
            "dI at distance scatter")
    ctx.log.info(f"{DATASET}: {stats}")
    return dg.MaterializeResult(metadata=meta)

