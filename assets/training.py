"""`trained_model` and `evaluation`: token-weighted continued pretraining on the packed data,
and RULER plus held-out perplexity, one partition per configured training run."""

import time
from dataclasses import asdict
from functools import partial

import dagster as dg
import numpy as np

from assets.common import image, torch_device
from assets.packing import DATASET_ASSETS
from assets.token_weights import fraction_summary
from lakehouse import packed_files, tables
from lakehouse.checkpoints import (
    pull,
    pull_folder,
    push,
    push_checkpoints,
    release,
    scratch_for,
)
from lakehouse.demo.pystdlib import generate as stdlib_prose
from lakehouse.plots import curves_png, histogram_png
from lakehouse.storage import exists, open_input, read_parquet, staged, write_parquet
from models.distributed import TrainJob, first_of, launch, resolve_processes
from models.evaluation import ensure_punkt_tab, perplexity_by_position, run_ruler
from models.registry import load_tokenizer, load_training_model, model_cache_dir
from models.short_context import check_shared_vocabulary, scorer_window, short_context_n
from models.streamed_data import StreamedPackedData
from models.training import (
    POSITION_BUCKETS,
    StepMetrics,
    TrainSettings,
    scorable_fractions,
)
from orchestration.lake_assets import StageContext, lake_asset


def _run(ctx: StageContext):
    name = ctx.partition_key
    for run in ctx.settings.training.runs:
        if run.name == name:
            return run
    raise KeyError(f"training run {name!r} is not in the configuration")


def _frozen_scorer(settings) -> str:
    return settings.token_weighting.scorer or settings.models.scorer


def _train_settings(settings, run) -> TrainSettings:
    """The run's trainer settings. ``token_weighting.n`` resolves as in token_weights (0:
    the frozen scorer's window), so frozen and unfrozen runs cut the context at the same n;
    kappa None: the paper's default for the run's variant (0.4 frozen, 0.2 unfrozen)."""
    t = settings.training
    tw = settings.token_weighting
    window = 0 if tw.n else scorer_window(_frozen_scorer(settings))  # read only when needed
    n = short_context_n(tw.n, window)
    return TrainSettings(mode=run.mode, frozen=run.frozen, variant=tw.variant,
                         shift_k=tw.shift_k, lam=tw.lam,
                         kappa=run.kappa if run.kappa is not None else tw.kappa, n=n,
                         overlap=tw.overlap, steps=t.steps, micro_batch=t.micro_batch,
                         grad_accum=t.grad_accum, lr=t.lr, warmup_steps=t.warmup_steps,
                         zero_stage=t.zero_stage, rope_theta=t.rope_theta,
                         block_size=t.block_size, seed=t.seed,
                         checkpoint_every=t.checkpoint_every, bf16=t.bf16,
                         attention=t.attention,
                         gradient_checkpointing=t.gradient_checkpointing,
                         processes=t.processes, shuffle_window=t.shuffle_window)


def _streamed(ctx: StageContext, dataset: str, with_weights: bool, heldout: int,
              shuffle_window: int = 1) -> StreamedPackedData:
    """The packed dataset on the lake, streamed a row group at a time: the part files of
    ``sequences/`` (or an earlier lake's single ``sequences.parquet``), and the dataset's
    frozen token weights when the run needs them."""
    files = packed_files.dataset_files(ctx.input_path(DATASET_ASSETS[dataset]))
    weights = None
    if with_weights:
        weights = ctx.input_path("token_weights", f"{dataset}.parquet")
        if not exists(weights):
            raise FileNotFoundError(f"{weights} missing: frozen token weighting needs the "
                                    "token_weights asset for this dataset")
    return StreamedPackedData(files, weights, heldout, shuffle_window, open_file=open_input)


@lake_asset(
    partitions="runs", step="train", pool="gpu", group="training",
    kinds=["pytorch", "deepspeed"],
    reads={"packed_dataset": "all", "baseline_dataset": "all", "token_weights": "all"},
    settings=["training", "token_weighting", "models"],
    description="Continued pretraining of the configured model on one packed dataset with "
                "DeepSpeed and the run's loss (uniform, dense or sparse; frozen or unfrozen "
                "scores); a Hugging Face checkpoint, DeepSpeed checkpoints for resume, and "
                "per-step metrics.",
)
def trained_model(ctx: StageContext):
    settings = ctx.settings
    run = _run(ctx)
    ts = _train_settings(settings, run)
    data = _streamed(ctx, run.dataset, run.mode != "uniform" and run.frozen,
                     settings.training.heldout_sequences, ts.shuffle_window)
    if not len(data):
        raise ValueError(f"run {run.name}: packed dataset {run.dataset} has no sequences")
    remote = ctx.output_path(run.name)
    out = scratch_for(remote)  # the lake's folder, or a local copy of an object-store one
    pulled = pull(remote, out, ("deepspeed", "metrics.parquet"))
    if pulled:
        ctx.log.info(f"run {run.name}: resumed state pulled from {remote}: {pulled}")
    ckpt = out / "deepspeed"
    metrics_path = out / "metrics.parquet"
    spec = settings.training.model or settings.models.scorer
    # the tiny models use the scorer's tokenizer; the model itself loads in each process
    tokenizer = load_tokenizer(settings.models.scorer if spec.startswith("tiny:") else spec)[0]
    vocabularies = {f"trained model {spec!r}": tokenizer}
    if spec != settings.models.scorer:
        vocabularies[f"scorer {settings.models.scorer!r}"] = \
            load_tokenizer(settings.models.scorer)[0]
    if run.mode != "uniform" and run.frozen and _frozen_scorer(settings) != spec:
        vocabularies[f"frozen scorer {_frozen_scorer(settings)!r}"] = \
            load_tokenizer(_frozen_scorer(settings))[0]
    check_shared_vocabulary(vocabularies)
    scorable = np.concatenate([  # spans (and weights) only, a row group at a time
        scorable_fractions(spans, ts, lp) for spans, lp in data.training_spans()]) \
        if run.mode != "uniform" else np.zeros(0)
    processes = resolve_processes(ts.processes)
    ctx.log.info(f"run {run.name}: {len(data)} sequences of {run.dataset} in "
                 f"{len(data.files)} files ({len(data.heldout_ids)} held out), {run.mode} "
                 f"{'frozen' if run.frozen else 'unfrozen'}, {ts.steps} steps on {processes} "
                 f"process(es), global batch {ts.micro_batch * ts.grad_accum * processes}")
    t0 = time.perf_counter()

    pushed: set[str] = set()

    def log(m: StepMetrics) -> None:
        ctx.log.info(f"step {m.step + 1}/{ts.steps}: loss {m.loss_unweighted:.4f} "
                     f"(weighted {m.loss_weighted:.4f}), {m.tokens / m.seconds:,.0f} "
                     f"tokens/s, weights mean {m.weight_mean:.2f} max {m.weight_max:.2f}")

    def upload(tag: str) -> None:  # each checkpoint to the object store once it is whole
        push(out, remote, f"deepspeed/{tag}")
        push(out, remote, "deepspeed/latest")
        pushed.add(tag)

    make_model = partial(first_of, load_training_model, spec, settings.models.scorer,
                         seed=settings.training.seed)
    with staged(out / "model") as model_dir:  # published once weights and tokenizer are in
        result = launch(TrainJob(ts, data, make_model, str(ckpt), str(model_dir)),
                        processes, log, upload)
        tokenizer.save_pretrained(model_dir)
    start, history = result.start_step, result.history
    earlier = [r for r in read_parquet(metrics_path).to_pylist() if r["step"] < start] \
        if start and metrics_path.exists() else []
    rows = earlier + [{**{k: v for k, v in asdict(m).items() if k != "loss_by_position"},
                       "position_buckets": list(m.loss_by_position),
                       "bucket_loss": list(m.loss_by_position.values())} for m in history]
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(tables.from_rows([{**r, "run": run.name} for r in rows],
                                   tables.TRAINING_METRICS), metrics_path)
    push_checkpoints(out, remote, "deepspeed", pushed)  # any not uploaded yet
    push(out, remote, "metrics.parquet")
    push(out, remote, "model", last=("config.json",))
    release(remote, out)
    steps = np.array([r["step"] + 1 for r in rows])
    meta = {"run": run.name, "dataset": run.dataset, "mode": run.mode, "frozen": run.frozen,
            "steps": int(ts.steps), "resumed_from_step": start,
            "final_loss": float(rows[-1]["loss_unweighted"]) if rows else float("nan"),
            "seconds": time.perf_counter() - t0, "settings": dg.MetadataValue.json(asdict(ts)),
            "model": dg.MetadataValue.path(f"{remote}/model"),
            "metrics": dg.MetadataValue.path(f"{remote}/metrics.parquet"),
            "attention": result.attention, "processes": result.processes,
            "gradient_checkpointing": ts.checkpointing(data.sequence_length()),
            "n": ts.n, "kappa": ts.sparse_kappa}
    if scorable.size:  # sparse keeps only these tokens; dense weighs the rest at lambda
        meta["scorable_fraction"] = dg.MetadataValue.json(fraction_summary(scorable))
        meta["scorable_histogram"] = image(histogram_png(
            scorable, f"{run.name}: per sequence, counted tokens with a usable score "
            f"({'frozen' if run.frozen else f'unfrozen, past the first n = {ts.n}'})",
            "fraction of the sequence", bins=20), "scorable fraction histogram")
    if rows:
        meta["loss_curve"] = image(curves_png(steps, {
            "unweighted": np.array([r["loss_unweighted"] for r in rows]),
            "weighted": np.array([r["loss_weighted"] for r in rows])},
            f"{run.name}: training loss", "step", "loss per counted token"), "loss curve")
    return dg.MaterializeResult(metadata=meta)


@lake_asset(
    partitions="runs", step="gpu", pool="gpu", group="training", kinds=["pytorch"],
    reads={"trained_model": "shard", "packed_dataset": "all", "baseline_dataset": "all"},
    settings=["evaluation", "training.heldout_sequences", "training.block_size"],
    description="RULER (lm-evaluation-harness, offline tasks) at the configured lengths and "
                "held-out perplexity by position, for one trained run; one results table "
                "across runs in the catalog (`evaluation_results`).",
)
def evaluation(ctx: StageContext):
    settings = ctx.settings
    run = _run(ctx)
    remote = ctx.input_path("trained_model", run.name, "model", scope="shard")
    if not exists(f"{remote}/config.json"):
        raise FileNotFoundError(f"{remote}: materialize trained_model for run {run.name}")
    scratch = scratch_for(remote)
    model_dir = pull_folder(remote, scratch)
    ev = settings.evaluation
    device = torch_device(settings.scoring.device)
    nltk_data = ensure_punkt_tab(model_cache_dir() / "nltk_data",
                                 (d["text"] for d in stdlib_prose(n_docs=300, max_chars=20000)))
    t0 = time.perf_counter()
    rows = run_ruler(str(model_dir), ev.tasks, ev.lengths, ev.limit, nltk_data, device)
    ctx.log.info(f"RULER: {len(rows)} scores in {time.perf_counter() - t0:.0f} s")
    heldout = _streamed(ctx, run.dataset, False, settings.training.heldout_sequences)
    if len(heldout.heldout_ids):
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(str(model_dir)).to(device)
        rows += perplexity_by_position(model, ((ids, spans) for _, ids, spans in
                                               heldout.heldout()),
                                       POSITION_BUCKETS, device, settings.training.block_size)
    table = tables.from_rows([{"run": run.name, "dataset": run.dataset, "mode": run.mode,
                               "frozen": run.frozen, "tokens": r.get("tokens", 0), **r}
                              for r in rows], tables.EVALUATION_RESULTS)
    path = ctx.output_path(f"{run.name}.parquet")
    write_parquet(table, path)
    md = "\n".join(["| task | length | metric | value |", "|---|---|---|---|"]
                   + [f"| {r['task']} | {r['length']} | {r['metric']} | {r['value']:.4f} |"
                      for r in rows])
    release(remote, scratch)
    return dg.MaterializeResult(metadata={"results": dg.MetadataValue.md(md),
                                          "rows": len(rows), "path": dg.MetadataValue.path(path)})

