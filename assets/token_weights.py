"""`token_weights`: frozen short-context log-probs of every token of every packed sequence,
for the token-weighted loss (the long-context side comes from the model in training). The
frozen scorer is a different model from the one in training, so its score is needed on the
first window of each unit too (SPEC B.1)."""

from collections.abc import Iterator

import dagster as dg
import numpy as np
import pyarrow as pa

from assets.common import image, torch_device
from assets.packing import DATASET_ASSETS
from lakehouse import tables
from lakehouse.packed_files import dataset_files, row_groups, write_row_groups
from lakehouse.plots import histogram_png
from models.registry import load_scorer, load_tokenizer, resolve_scorer
from models.scoring import model_window, resolve_bos
from models.short_context import (
    ShortContextSummary,
    check_shared_vocabulary,
    short_context_n,
    short_context_row_groups,
)
from orchestration.lake_assets import StageContext, lake_asset
from orchestration.partitions import TRANSIENT_RETRY

ALIGNED_CHECK = "aligned_with_sequences"


def _weights(ctx: StageContext, dataset: str, model, summary: ShortContextSummary, n: int,
             overlap: int, bos: int | None, constants: dict) -> Iterator[pa.Table]:
    """The weights of one packed dataset as Arrow tables, a row group at a time."""
    files = dataset_files(ctx.input_path(DATASET_ASSETS[dataset]))
    for cols in short_context_row_groups(
            model, row_groups(files, ["seq_id", "input_ids", "indices"]), n, overlap,
            ctx.settings.scoring.token_budget, ctx.settings.scoring.block_size, summary, bos,
            progress=lambda m: ctx.log.info(f"{dataset}: {m}")):
        cols.update({k: [v] * len(cols["seq_id"]) for k, v in constants.items()})
        yield pa.Table.from_pydict(cols, schema=tables.TOKEN_WEIGHTS)


def fraction_summary(values: np.ndarray) -> dict:
    """Mean, min, 10th percentile and median of per-sequence fractions (empty: {})."""
    if not values.size:
        return {}
    return {"mean": round(float(values.mean()), 4), "min": round(float(values.min()), 4),
            "p10": round(float(np.quantile(values, 0.1)), 4),
            "median": round(float(np.median(values)), 4), "sequences": int(values.size)}


@lake_asset(
    reads={"packed_dataset": "all", "baseline_dataset": "all"},
    settings=["token_weighting", "models.scorer", "scoring.dtype", "scoring.bos",
              "packing.row_group_rows"],
    step="gpu", pool="gpu", group="training", kinds=["pytorch", "parquet"], retry=TRANSIENT_RETRY,
    checks=[(ALIGNED_CHECK, "one row per packed sequence, of its length; full_context exactly "
                            "on each unit's first n tokens; log-probs <= 0 exactly on every "
                            "token of a unit but its first", True)],
    description="Per packed sequence, log p'(n) of every token but each unit's first from "
                "the frozen short-context scorer (each unit scored alone, n-token windows "
                "with n/4 overlap; the unit's first n tokens, where the scorer sees the "
                "whole unit, are marked full_context), with scorer id, n and stride, and the "
                "scorable fraction per sequence; joined to the sequences by seq_id.",
)
def token_weights(ctx: StageContext):
    settings = ctx.settings
    cfg = settings.token_weighting
    spec = cfg.scorer or settings.models.scorer
    model, tokenizer = load_scorer(spec, dtype=settings.scoring.dtype,
                                   device=torch_device(settings.scoring.device))
    if spec != settings.models.scorer:  # the data's ids come from models.scorer's tokenizer
        check_shared_vocabulary({f"frozen scorer {spec!r}": tokenizer,
                                 f"scorer {settings.models.scorer!r}":
                                     load_tokenizer(settings.models.scorer)[0]})
    bos = resolve_bos(tokenizer, settings.scoring.bos)  # as this scorer runs everywhere
    n = short_context_n(cfg.n, model_window(model))
    overlap = cfg.overlap if cfg.overlap is not None else n // 4
    scorer_id = resolve_scorer(spec).model_id
    meta: dict = {"scorer_id": scorer_id, "n": n, "stride": n - overlap}
    checks: dict[str, bool] = {}
    for dataset in cfg.datasets:
        summary = ShortContextSummary(n)
        path = ctx.output_path(f"{dataset}.parquet")
        # streamed: one row group of sequences in, its row group of weights out, so that
        # memory holds one row group whatever the dataset's size (the trainer reads the
        # weights by row group too)
        path = write_row_groups(path, tables.TOKEN_WEIGHTS, _weights(
            ctx, dataset, model, summary, n, overlap, bos,
            {"scorer_id": scorer_id, "n": n, "stride": n - overlap}),
            settings.packing.row_group_rows)
        rows = summary.sequences
        far = summary.far_logp
        scorable, beyond = summary.scorable_fraction, summary.beyond_n_fraction
        meta.update({f"{dataset}_sequences": rows, f"{dataset}_tokens": summary.tokens,
                     f"{dataset}_tokens_beyond_n": summary.far_seen,
                     f"{dataset}_path": dg.MetadataValue.path(path),
                     f"{dataset}_aligned": summary.aligned,
                     f"{dataset}_scorable_fraction": dg.MetadataValue.json(
                         fraction_summary(scorable)),
                     f"{dataset}_beyond_n_fraction": dg.MetadataValue.json(
                         fraction_summary(beyond))})
        if beyond.size:
            meta[f"{dataset}_beyond_n_histogram"] = image(histogram_png(
                beyond, f"{dataset}: per sequence, counted tokens past their unit's first "
                f"n = {n} (scorable unfrozen; frozen scores all: mean "
                f"{scorable.mean():.3f})", "fraction of the sequence", bins=20),
                "scorable fraction histogram")
        if far.size:
            sampled = "" if far.size == summary.far_seen else \
                f" (a seeded sample of {far.size:,} of {summary.far_seen:,})"
            meta[f"{dataset}_logp_histogram"] = image(histogram_png(
                far, f"{dataset}: short-context log p of tokens beyond n = {n}{sampled}",
                "log p'(n)"), "log-prob histogram")
        checks[dataset] = summary.aligned
    yield dg.MaterializeResult(metadata=meta)
    yield dg.AssetCheckResult(check_name=ALIGNED_CHECK, passed=all(checks.values()),
                              metadata={"datasets": dg.MetadataValue.json(checks)})
