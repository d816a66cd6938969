"""`token_weights`: frozen short-context log-probs of every packed sequence, for the
token-weighted loss (the long-context side comes from the model in training)."""

import dagster as dg
import numpy as np
import pyarrow as pa

from assets.common import configured_bos, image, torch_device
from assets.packing import DATASET_ASSETS
from lakehouse import tables
from lakehouse.plots import histogram_png
from lakehouse.storage import write_parquet
from models.registry import load_scorer, resolve_scorer
from models.scoring import model_window
from models.short_context import short_context_table
from orchestration.lake_assets import StageContext, lake_asset
from orchestration.partitions import TRANSIENT_RETRY

ALIGNED_CHECK = "aligned_with_sequences"


@lake_asset(
    reads={"packed_dataset": "all", "baseline_dataset": "all"},
    settings=["token_weighting", "models.scorer", "scoring.dtype", "scoring.bos"], step="gpu",
    pool="gpu",
    group="training", kinds=["pytorch", "parquet"], retry=TRANSIENT_RETRY,
    checks=[(ALIGNED_CHECK, "one row per packed sequence, of its length; full_context exactly "
                            "on each unit's first n tokens; log-probs <= 0 exactly past them",
             True)],
    description="Per packed sequence, log p'(n) of every token past its unit's first n "
                "from the frozen short-context scorer (each unit scored alone, n-token "
                "windows with n/4 overlap; the first n tokens, whose score is 0, are marked "
                "full_context and not run), with scorer id, n and stride; joined to the "
                "sequences by seq_id.",
)
def token_weights(ctx: StageContext):
    settings = ctx.settings
    cfg = settings.token_weighting
    spec = cfg.scorer or settings.models.scorer
    model, _ = load_scorer(spec, dtype=settings.scoring.dtype,
                           device=torch_device(settings.scoring.device))
    n = cfg.n or model_window(model)
    overlap = cfg.overlap if cfg.overlap is not None else n // 4
    scorer_id = resolve_scorer(spec).model_id
    meta: dict = {"scorer_id": scorer_id, "n": n, "stride": n - overlap}
    checks: dict[str, bool] = {}
    for dataset in cfg.datasets:
        seqs = ctx.lake_dataset(DATASET_ASSETS[dataset], "sequences.parquet").to_table(
            columns=["seq_id", "input_ids", "indices"])
        out = short_context_table(
            model, *(seqs[c].to_pylist() for c in ("seq_id", "input_ids", "indices")), n,
            overlap, settings.scoring.token_budget, settings.scoring.block_size,
            progress=lambda m, d=dataset: ctx.log.info(f"{d}: {m}"),
            bos_token_id=configured_bos(settings, spec))
        cols, rows = out["columns"], seqs.num_rows
        cols.update(scorer_id=[scorer_id] * rows, n=[n] * rows, stride=[n - overlap] * rows)
        path = write_parquet(pa.Table.from_pydict(cols, schema=tables.TOKEN_WEIGHTS),
                             ctx.output_path(f"{dataset}.parquet"))
        far: np.ndarray = out["far_logp"]
        meta.update({f"{dataset}_sequences": rows, f"{dataset}_tokens_beyond_n": int(far.size),
                     f"{dataset}_path": dg.MetadataValue.path(path),
                     f"{dataset}_aligned": out["aligned"]})
        if far.size:
            meta[f"{dataset}_logp_histogram"] = image(histogram_png(
                far, f"{dataset}: short-context log p of tokens beyond n = {n}", "log p'(n)"),
                "log-prob histogram")
        checks[dataset] = out["aligned"]
    yield dg.MaterializeResult(metadata=meta)
    yield dg.AssetCheckResult(check_name=ALIGNED_CHECK, passed=all(checks.values()),
                              metadata={"datasets": dg.MetadataValue.json(checks)})
