"""`token_weights`: frozen short-context log-probs of every packed sequence, for the
token-weighted loss (the long-context side comes from the model in training)."""

import time

import dagster as dg
import numpy as np
import pyarrow as pa

from assets.common import image, lake_dataset, torch_device
from lakehouse import tables
from lakehouse.plots import histogram_png
from lakehouse.storage import exists, write_parquet
from models.registry import load_scorer, resolve_scorer
from models.scoring import model_window
from models.short_context import short_context_logprobs
from orchestration.k8s import op_tags
from orchestration.partitions import TRANSIENT_RETRY
from orchestration.resources import PipelineResource

ALIGNED_CHECK = "aligned_with_sequences"


def _aligned(ids: list, spans: list, logp: np.ndarray, full: np.ndarray, n: int) -> bool:
    """full_context exactly on each unit's first n tokens but its first; log-probs finite and
    <= 0 exactly past them (NaN at padding, at unit starts and where the score is 0 anyway)."""
    expect_full = np.zeros(len(ids), bool)
    expect_scored = np.zeros(len(ids), bool)
    for a, e in spans:
        expect_full[a + 1:min(a + n, e)] = True
        expect_scored[a + n:e] = True
    finite = np.isfinite(logp)
    return len(logp) == len(ids) and len(full) == len(ids) \
        and bool(np.all(full == expect_full)) and bool(np.all(finite == expect_scored)) \
        and bool(np.all(logp[finite] <= 1e-5))


@dg.asset(
    op_tags=op_tags("gpu"),
    deps=["packed_dataset", "baseline_dataset"], group_name="training",
    kinds={"pytorch", "parquet"}, pool="gpu", retry_policy=TRANSIENT_RETRY,
    check_specs=[dg.AssetCheckSpec(ALIGNED_CHECK, asset="token_weights", blocking=True,
                                   description="one row per packed sequence, of its length; "
                                               "full_context exactly on each unit's first n "
                                               "tokens; log-probs <= 0 exactly past them")],
    description="Per packed sequence, log p'(n) of every token past its unit's first n "
                "from the frozen short-context scorer (each unit scored alone, n-token "
                "windows with n/4 overlap; the first n tokens, whose score is 0, are marked "
                "full_context and not run), with scorer id, n and stride; joined to the "
                "sequences by seq_id.",
)
def token_weights(context: dg.AssetExecutionContext, pipeline: PipelineResource):
    settings = pipeline.settings
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
        path = pipeline.lake.path("packed_dataset", dataset, "sequences.parquet")
        if not exists(path):
            raise FileNotFoundError(f"token_weights: {path} does not exist; materialize "
                                    f"packed_dataset and baseline_dataset first")
        seqs = lake_dataset(pipeline, "packed_dataset", dataset, "sequences.parquet").to_table(
            columns=["seq_id", "input_ids", "indices"])
        rows = {f.name: [] for f in tables.TOKEN_WEIGHTS}
        start, tokens = time.perf_counter(), 0
        all_logp = []
        aligned = True
        for i, (seq_id, ids, spans) in enumerate(zip(
                *(seqs[c].to_pylist() for c in ("seq_id", "input_ids", "indices")),
                strict=True)):
            logp, full = short_context_logprobs(
                model, np.asarray([ids]), [[tuple(s) for s in spans]], n, overlap,
                settings.scoring.token_budget, settings.scoring.block_size)
            rows["seq_id"].append(seq_id)
            rows["logp_short"].append(logp[0])
            rows["full_context"].append(full[0])
            tokens += len(ids)
            aligned &= _aligned(ids, spans, logp[0], full[0], n)
            all_logp.append(logp[0][~full[0] & np.isfinite(logp[0])])
            context.log.info(f"{dataset}: {i + 1}/{seqs.num_rows} sequences, {tokens} tokens, "
                             f"{tokens / max(time.perf_counter() - start, 1e-9):,.0f} tokens/s")
        n_rows = len(rows["seq_id"])
        rows["scorer_id"] = [scorer_id] * n_rows
        rows["n"] = [n] * n_rows
        rows["stride"] = [n - overlap] * n_rows
        out = pipeline.lake.path("token_weights", f"{dataset}.parquet")
        write_parquet(pa.Table.from_pydict(rows, schema=tables.TOKEN_WEIGHTS), out)
        far = np.concatenate(all_logp) if all_logp else np.zeros(0, np.float32)
        meta[f"{dataset}_sequences"] = n_rows
        meta[f"{dataset}_tokens_beyond_n"] = int(far.size)
        meta[f"{dataset}_path"] = dg.MetadataValue.path(out)
        if far.size:
            meta[f"{dataset}_logp_histogram"] = image(histogram_png(
                far, f"{dataset}: short-context log p of tokens beyond n = {n}",
                "log p'(n)"), "log-prob histogram")
        meta[f"{dataset}_aligned"] = aligned
        checks[dataset] = aligned
    yield dg.MaterializeResult(metadata=meta)
    yield dg.AssetCheckResult(check_name=ALIGNED_CHECK, passed=all(checks.values()),
                              metadata={"datasets": dg.MetadataValue.json(checks)})
