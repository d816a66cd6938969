"""The method comparison: EntropyLong data against the plain-concatenation baseline, the same
model trained on each with the same budget and the same losses, evaluated with RULER at the
longest lengths the trained model holds.

What it runs is the pipeline itself, not a re-implementation: a copy of a pipeline config
(the embedded demo by default) with its own lake, whose `training.runs` are replaced by
one run per (dataset, loss) pair — {entropylong, baseline} x {uniform, frozen sparse} by
default — so every run trains the same model for the same number of optimizer steps on
sequences of the same length, and the baseline is packed to EntropyLong's token count
(`baseline_dataset`). The data jobs, `token_weights`, `trained_model` and `evaluation` run
in this process, as `elong demo --train` runs them; the table is read back from the
catalog's `run_comparison` and `training_metrics` views.

    python -m bench.method                                   # CPU, toy scale (minutes)
    python -m bench.method --model smollm2-135m --target-length 16384 --steps 200 \\
        --lengths 8192 16384                                 # a GPU machine

On a CPU the trained model is a tiny random Llama for a few steps: the table shows that the
comparison runs end to end and what it reports, not which data is better; scores near 0
for every run are expected there. The README gives the GPU figures when a run exists.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.common import RESULTS, Record, device_name, report

DATASETS = ("entropylong", "baseline")
LOSSES = {"uniform": {"mode": "uniform"},
          "sparse": {"mode": "sparse", "frozen": True},
          "dense": {"mode": "dense", "frozen": True},
          "sparse-unfrozen": {"mode": "sparse", "frozen": False},
          "dense-unfrozen": {"mode": "dense", "frozen": False}}
RULER_METRIC = "score"


@dataclass(frozen=True)
class Comparison:
    """What the runs produced: per run its data, loss, trained tokens and steps, and per
    (task, run) the mean RULER score over the evaluated lengths; held-out perplexity per
    position bucket of each run's own held-out sequences."""

    runs: list[dict]
    ruler: dict[tuple[str, str], float]  # (task, run) -> score
    heldout: dict[tuple[str, str], float]  # (bucket metric, run) -> perplexity
    lengths: list[int]


def run_name(dataset: str, loss: str) -> str:
    return f"{dataset}-{loss}"


def _absolute(value: str, base: Path) -> str:
    """A config path relative to the base config's folder, made absolute (URLs untouched)."""
    if "://" in value or Path(value).is_absolute():
        return value
    return str((base / value).resolve())


def comparison_config(base_config: Path, out: Path, losses: list[str], steps: int | None,
                      lengths: list[int] | None, model: str | None, limit: int | None,
                      target_length: int | None, overrides: dict | None = None) -> Path:
    """A copy of ``base_config`` with its lake under ``out`` and one training run per
    (dataset, loss); returns the new config's path.

    Relative paths of the base (corpora, a local scorer folder) stay those of the base's
    folder. ``lengths`` None: the packed length and half of it, the longest the trained
    model has seen."""
    base = base_config.resolve().parent
    raw = yaml.safe_load(base_config.read_text()) or {}
    raw = {**raw, **(overrides or {})}
    raw["lake"] = str((out / "lake").resolve())
    raw.pop("catalog", None)
    for corpus in raw.get("corpora", []) or []:
        corpus["uri"] = _absolute(corpus["uri"], base)
    models = dict(raw.get("models", {}) or {})
    for key in ("scorer", "embedder"):
        if models.get(key) and (base / models[key]).exists():
            models[key] = str((base / models[key]).resolve())
    raw["models"] = models
    packing = dict(raw.get("packing", {}) or {})
    if target_length:
        packing["target_length"] = target_length
    raw["packing"] = packing
    training = dict(raw.get("training", {}) or {})
    training["runs"] = [{"name": run_name(d, loss), "dataset": d, **LOSSES[loss]}
                        for d in DATASETS for loss in losses]
    if steps:
        training["steps"] = steps
    if model:
        training["model"] = model
    raw["training"] = training
    evaluation = dict(raw.get("evaluation", {}) or {})
    if lengths:
        evaluation["lengths"] = lengths
    elif target_length or packing.get("target_length"):
        top = int(target_length or packing["target_length"])
        evaluation["lengths"] = [top // 2, top]
    if limit:
        evaluation["limit"] = limit
    raw["evaluation"] = evaluation
    out.mkdir(parents=True, exist_ok=True)
    path = out / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def run_comparison(config_path: Path, log=print) -> Comparison:
    """Write the demo corpora (if any), register partitions and run the data and training
    jobs in this process on an ephemeral Dagster instance; then read the results back."""
    import dagster as dg

    from lakehouse.demo import write_demo_corpus
    from orchestration.cli import register
    from orchestration.config import load_config
    from orchestration.definitions import build_definitions
    from orchestration.jobs import DATA_STAGES, TRAIN_STAGES, run_stages

    config = load_config(config_path)
    for spec in config.corpus_specs():
        if spec.demo:
            write_demo_corpus(spec)
    defs = build_definitions(str(config_path))
    with dg.DagsterInstance.ephemeral() as instance:
        register(config_path, instance)
        run_stages(defs, instance, DATA_STAGES + TRAIN_STAGES, log=log)
    return read_comparison(config.catalog_path)


def read_comparison(catalog: str) -> Comparison:
    """The comparison as the catalog's views hold it."""
    import duckdb

    con = duckdb.connect(catalog, read_only=True)
    try:
        runs = [dict(zip(("run", "dataset", "mode", "frozen", "steps", "tokens"), r,
                         strict=True)) for r in con.execute(
            "SELECT e.run, e.dataset, e.mode, e.frozen, t.steps, t.tokens FROM "
            "(SELECT run, any_value(dataset) AS dataset, any_value(mode) AS mode, "
            " any_value(frozen) AS frozen FROM evaluation_results GROUP BY run) e "
            "JOIN (SELECT run, count(*) AS steps, sum(tokens) AS tokens FROM training_metrics "
            " GROUP BY run) t USING (run) ORDER BY e.run").fetchall()]
        ruler = {(task, run): float(v) for run, task, v in con.execute(
            "SELECT run, task, value FROM run_comparison WHERE task <> 'heldout_ppl' "
            "AND metric = ?", [RULER_METRIC]).fetchall()}
        heldout = {(metric, run): float(v) for run, metric, v in con.execute(
            "SELECT run, metric, value FROM run_comparison WHERE task = 'heldout_ppl'"
        ).fetchall()}
        lengths = [int(x) for (x,) in con.execute(
            "SELECT DISTINCT length FROM evaluation_results WHERE task <> 'heldout_ppl' "
            "ORDER BY length").fetchall()]
    finally:
        con.close()
    return Comparison(runs, ruler, heldout, lengths)


def ruler_mean(c: Comparison, run: str) -> float:
    scores = [v for (_, r), v in c.ruler.items() if r == run]
    return sum(scores) / len(scores) if scores else math.nan


def table(c: Comparison) -> str:
    """RULER per task (mean over lengths) and held-out perplexity per position bucket, one
    column per run, with each run's data, loss, steps and trained tokens on top."""
    names = [r["run"] for r in c.runs]
    width = max(20, *(len(n) for n in names))
    head = f"{'':24}" + "".join(f"{n:>{width + 2}}" for n in names)
    lines = [head, "-" * len(head)]
    for key in ("dataset", "mode", "frozen", "steps", "tokens"):
        lines.append(f"{key:24}" + "".join(f"{str(r[key]):>{width + 2}}" for r in c.runs))
    tasks = sorted({t for t, _ in c.ruler})
    for task in tasks:
        lines.append(f"{task:24}" + "".join(
            f"{c.ruler.get((task, n), math.nan):>{width + 2}.3f}" for n in names))
    lines.append(f"{'RULER mean':24}" + "".join(f"{ruler_mean(c, n):>{width + 2}.3f}"
                                                for n in names))
    for metric in sorted({m for m, _ in c.heldout},
                         key=lambda m: int(m.rsplit("_", 1)[-1]) if m[-1].isdigit() else 0):
        lines.append(f"{metric:24}" + "".join(
            f"{c.heldout.get((metric, n), math.nan):>{width + 2}.2f}" for n in names))
    return "\n".join(lines)


def records(c: Comparison, losses: list[str], params: dict) -> list[Record]:
    """Per loss: EntropyLong's RULER mean against the baseline's, trained alike."""
    out = []
    for loss in losses:
        ours, base = ruler_mean(c, run_name("entropylong", loss)), \
            ruler_mean(c, run_name("baseline", loss))
        ratio = ours / base if base > 0 else (math.inf if ours > 0 else math.nan)
        out.append(Record(
            metric=f"RULER mean @{'/'.join(map(str, c.lengths))} ({loss}): EL / baseline",
            value=ours, baseline=base, ratio=ratio, unit="score",
            target="ratio > 1 (the paper's claim; meaningful only for a trained model)",
            met=bool(ratio > 1), device=device_name(), params=params))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=None,
                        help="base pipeline config (default: $ELONG_CONFIG or pipeline.yaml)")
    parser.add_argument("--out", type=Path, default=RESULTS / "method_run",
                        help="folder of the comparison's config and lake")
    parser.add_argument("--losses", nargs="+", default=["uniform", "sparse"],
                        choices=sorted(LOSSES))
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per run")
    parser.add_argument("--model", default=None,
                        help="model to train (default: the config's training.model)")
    parser.add_argument("--target-length", type=int, default=None,
                        help="tokens per packed sequence (default: the config's)")
    parser.add_argument("--lengths", type=int, nargs="+", default=None,
                        help="RULER lengths (default: the packed length and half of it)")
    parser.add_argument("--limit", type=int, default=None, help="RULER samples per task")
    args = parser.parse_args(argv)
    from orchestration.config import DEFAULT_CONFIG

    base = args.config or Path(os.environ.get("ELONG_CONFIG") or DEFAULT_CONFIG)
    path = comparison_config(base, args.out, args.losses, args.steps, args.lengths,
                             args.model, args.limit, args.target_length)
    c = run_comparison(path)
    print("\n" + table(c))
    report("method", records(c, args.losses, {
        "config": str(base), "losses": args.losses, "lengths": c.lengths,
        "runs": c.runs, "ruler": {f"{t}|{r}": v for (t, r), v in c.ruler.items()}}))


if __name__ == "__main__":
    main()
