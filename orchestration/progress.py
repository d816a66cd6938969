"""What `elong demo` shows while it runs: one short line per Dagster run, the full log in a file.

- **One line per run** as it finishes (:func:`progress_line`): runs done / total, time
  elapsed and an estimate of the time left (:func:`estimate_left`), the job and partition,
  ok or FAILED, its seconds, and the counts it produced, read from the materialization
  metadata of the assets it materialized (:func:`run_counts`), with a rate for the scoring
  steps (tokens/s over the step's own duration).
- **Everything else in a file** (:func:`log_to_file`): every Dagster event, DEBUG included,
  through a logger definition (:func:`file_logger`) that replaces the job's console logger
  (``loggers: {file: {}}`` in the run config, so Dagster's ``colored_console_logger`` is
  never set up); Python logging (Dagster's own, transformers, lancedb, ...) and warnings
  through the root logger; and whatever native code writes to stderr (file descriptor 2).
- **A failed run** stops the loop; its step errors (:func:`failure_lines`) are printed by the
  caller with the log's path.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from orchestration.jobs import STAGES

WIDTH = 119

# asset -> (metadata key, label, shown when zero) of the counts a run's line shows, in order;
# a pair of keys shows as part/whole
COUNTS: dict[str, tuple[tuple[str | tuple[str, str], str, bool], ...]] = {
    "corpus_shards": (("docs_out", "docs", True), ("quarantined", "quarantined", False)),
    "tokenized_docs": (("tokens", "tokens", True),),
    "chunks": (("chunks", "chunks", True),),
    "recurring_text": (("recurring_units", "recurring units", True),),
    "term_frequencies": (("terms", "words", True),),
    "entropy_profiles": (("tokens", "tokens", True),),
    "anchors": (("anchors", "anchors", True),),
    "vector_index": (("rows", "chunks indexed", True),),
    "retrieval_candidates": (("candidates", "candidates", True),),
    "verified_dependencies": ((("verified", "rows"), "rows verified", True),),
    "packed_dataset": (("sequences", "sequences", True), ("fill_rate", "fill", True)),
    "baseline_dataset": (("sequences", "baseline sequences", True),),
    "stats_catalog": (("views", "views", True),),
}
# asset -> (metadata key, label): that count over the duration of the step that made it
RATES: dict[str, tuple[str, str]] = {
    "entropy_profiles": ("tokens", "tok/s"),
    "verified_dependencies": ("forward_tokens", "tok/s"),
}
# assets with no entry in COUNTS show their dagster/row_count; these show nothing
QUIET = {"unit_counts", "chunk_embeddings", "quarantine", "duplicates", "shard_stats",
         "term_counts"}

# Dagster's wrapper around an error raised in a step: its cause is what the reader needs
WRAPPERS = {"DagsterExecutionStepExecutionError", "DagsterUserCodeExecutionError"}


# -- formatting (pure) ---------------------------------------------------------------------

def duration(seconds: float | None) -> str:
    """``42s``, ``3m05s``, ``1h02m``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def number(value: float | int | tuple) -> str:
    """A count as a reader takes it in: ``1,234``, ``1.2M``, ``0.93``, ``8/45``."""
    if isinstance(value, tuple):
        return "/".join(number(v) for v in value)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and not value.is_integer():
        if abs(value) < 10:
            return f"{value:.2f}"
        value = round(value)
    value = int(value)
    if abs(value) >= 10_000_000:
        return f"{value / 1e6:.1f}M"
    return f"{value:,}"


def progress_line(job: str, key: str | None, status: str, seconds: float,
                  counts: Mapping[str, float | int | tuple], done: int, total: int, elapsed: float,
                  left: float | None, width: int = WIDTH) -> str:
    """One finished run: ``[done/total elapsed ~left] job key status seconds: counts``.

    ``counts`` maps a label to its value (``{"docs": 12, "rows verified": (8, 45),
    "tok/s": 1234.5}``); ``left`` is the estimated seconds still to run (None: unknown).
    Cut to ``width`` characters.
    """
    n = len(str(total))
    eta = "done" if done >= total else "stopped" if status == "FAILED" else \
        f"~{duration(left)} left"
    head = f"[{done:>{n}}/{total} {duration(elapsed)} {eta}]"
    what = job + (f" {key}" if key else "")
    line = f"{head} {what} {status} {duration(seconds)}"
    if counts:
        line += ": " + ", ".join(f"{number(v)} {label}" for label, v in counts.items())
    return line if len(line) <= width else line[:width - 1] + "…"


def estimate_left(remaining: Sequence[str], durations: Mapping[str, Sequence[float]],
                  history: Mapping[str, float] | None = None) -> float | None:
    """Seconds the ``remaining`` runs (their job names) should take: each at the mean of
    that job's runs so far, else its duration in an earlier run on this instance
    (``history``), else the mean of every run so far; None when nothing is known."""
    history = history or {}
    done = [d for ds in durations.values() for d in ds]
    fallback = sum(done) / len(done) if done else None
    left = 0.0
    for job in remaining:
        if durations.get(job):
            left += sum(durations[job]) / len(durations[job])
        elif job in history:
            left += history[job]
        elif fallback is not None:
            left += fallback
        else:
            return None
    return left


# -- what a run produced --------------------------------------------------------------------

def _value(meta: Mapping, key: str | tuple[str, str]):
    if isinstance(key, tuple):
        part, whole = (_value(meta, k) for k in key)
        return None if part is None or whole is None else (part, whole)
    v = meta.get(key)
    v = getattr(v, "value", v)
    if isinstance(v, list | dict):
        return len(v)
    return v if isinstance(v, int | float) and not isinstance(v, bool) else None


def run_counts(result) -> dict[str, float | int | tuple]:
    """The counts a run produced (label -> value), from the metadata of its asset
    materializations, in the order of :data:`COUNTS`, then the rates of :data:`RATES` (the
    count over the duration of the step that produced it)."""
    step_s = {e.step_key: e.event_specific_data.duration_ms / 1000
              for e in result.get_step_success_events()}
    metas: dict[str, tuple[Mapping, str | None]] = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        metas[mat.asset_key.to_user_string()] = (mat.metadata, event.step_key)
    order = list(COUNTS) + [a for a in metas if a not in COUNTS]
    counts: dict[str, float | int | tuple] = {}
    for asset in order:
        if asset not in metas or asset in QUIET:
            continue
        meta, _ = metas[asset]
        specs = COUNTS.get(asset, (("dagster/row_count", f"{asset} rows", True),))
        for key, label, zero in specs:
            v = _value(meta, key)
            shown = zero or (any(v) if isinstance(v, tuple) else bool(v))
            if v is not None and shown and label not in counts:
                counts[label] = v
    for asset, (key, label) in RATES.items():
        if asset in metas:
            meta, step = metas[asset]
            v, s = _value(meta, key), step_s.get(step)
            if v and s:
                counts[label] = v / s
    return counts


def failure_lines(result, limit: int = 6) -> list[str]:
    """The errors of a failed run: for each failed step (else the run), its error and the
    errors that caused it, one line each, then where the last of them was raised."""
    lines = []
    events = list(result.get_step_failure_events())
    errors = [(e.step_key, e.step_failure_data.error) for e in events
              if e.step_failure_data and e.step_failure_data.error]
    if not errors:
        run_failure = next((e for e in result.all_events if e.event_type_value == "RUN_FAILURE"),
                           None)
        data = run_failure and run_failure.event_specific_data
        if data is not None and getattr(data, "error", None) is not None:
            errors = [(None, data.error)]
        elif data is not None and getattr(data, "failure_reason", None):
            lines.append(f"run failed: {data.failure_reason}")
    for step, error in errors:
        chain, where = [], None
        while error is not None:
            message = " ".join(error.message.split())
            wrapper = error.cls_name in WRAPPERS and error.cause is not None
            if message and message not in chain and not wrapper:
                chain.append(message)
            frames = [f for f in error.stack if f.strip()]
            if frames:
                where = " ".join(frames[-1].split("\n")[0].split())
            error = error.cause
        if chain:
            lines.append((f"step {step}: " if step else "") + chain[0])
            lines += [f"  caused by {m}" for m in chain[1:]]
        if where:
            lines.append(f"  at {where}")
    return [line if len(line) <= 300 else line[:299] + "…" for line in lines[:limit]]


# -- the log file --------------------------------------------------------------------------

FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"


def file_logger(handler: logging.Handler) -> dg.LoggerDefinition:
    """A Dagster logger definition that sends every event and message of a run, DEBUG
    included, to ``handler`` (Dagster formats the message: job - run id - step - event)."""
    def init(_context) -> logging.Logger:
        logger = logging.Logger("dagster", logging.DEBUG)
        logger.addHandler(handler)
        return logger

    return dg.LoggerDefinition(init, description="Every Dagster event of the run to a file.")


def quiet_job(job: dg.JobDefinition, handler: logging.Handler) -> tuple[dg.JobDefinition, dict]:
    """``job`` with the file logger as its only logger, and the run config that selects it
    (with a logger named in the run config Dagster sets up no console logger)."""
    return job.with_logger_defs({"file": file_logger(handler)}), {"loggers": {"file": {}}}


@contextmanager
def log_to_file(path: Path) -> Iterator[logging.Handler]:
    """Meanwhile, Python logging (every logger that propagates to the root: Dagster's own,
    lancedb, ...), warnings, and anything written to stderr (sys.stderr and file descriptor
    2: native libraries, progress bars, transformers' handler) go to ``path`` instead of
    the screen. Yields the file handler, for :func:`file_logger`. stdout is left alone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    saved_handlers = root.handlers[:]
    for h in saved_handlers:
        root.removeHandler(h)
    root.addHandler(handler)
    logging.captureWarnings(True)
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    saved_fd = os.dup(2)
    os.dup2(fd, 2)
    os.close(fd)
    saved_stderr = sys.stderr
    sys.stderr = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
    try:
        yield handler
    finally:
        sys.stderr.close()
        sys.stderr = saved_stderr
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
        logging.captureWarnings(False)
        root.removeHandler(handler)
        for h in saved_handlers:
            root.addHandler(h)
        handler.close()


# -- running --------------------------------------------------------------------------------

@dataclass
class Outcome:
    job: str
    key: str | None
    success: bool
    seconds: float
    counts: dict = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    run_id: str | None = None


def plan(instance: dg.DagsterInstance, names: Sequence[str]) -> list[tuple[str, str | None]]:
    """(job, partition key) of every run the named stages make, in order: each job once per
    key registered in its partition set, as :func:`orchestration.jobs.run_stages` runs them."""
    by_name = {s.job: s for s in STAGES}
    runs = []
    for name in names:
        stage = by_name[name]
        keys = instance.get_dynamic_partitions(stage.partitions) if stage.partitions else [None]
        runs += [(name, k) for k in keys]
    return runs


def history(instance: dg.DagsterInstance, runs: Sequence[tuple[str, str | None]]) -> dict:
    """Job -> mean seconds of its latest successful runs on the instance (as many as this
    plan runs of it), for the first estimate of the time left."""
    out = {}
    for job in dict.fromkeys(j for j, _ in runs):
        n = sum(1 for j, _ in runs if j == job)
        records = instance.get_run_records(
            filters=dg.RunsFilter(job_name=job, statuses=[dg.DagsterRunStatus.SUCCESS]),
            limit=n)
        secs = [r.end_time - r.start_time for r in records if r.start_time and r.end_time]
        if secs:
            out[job] = sum(secs) / len(secs)
    return out


def run_one(job: dg.JobDefinition, instance: dg.DagsterInstance, key: str | None,
            handler: logging.Handler) -> Outcome:
    """Execute one run of ``job`` in this process, its log to ``handler`` only."""
    quiet, run_config = quiet_job(job, handler)
    start = time.perf_counter()
    try:
        res = quiet.execute_in_process(instance=instance, partition_key=key,
                                       run_config=run_config, raise_on_error=False)
    except Exception as exc:  # a run that could not start (config, partition, storage)
        logging.getLogger("elong").exception(f"{job.name} {key or ''}: run did not start")
        return Outcome(job.name, key, False, time.perf_counter() - start,
                       errors=[f"{type(exc).__name__}: {' '.join(str(exc).split())}"])
    seconds = time.perf_counter() - start
    return Outcome(job.name, key, res.success, seconds, run_counts(res),
                   [] if res.success else failure_lines(res), res.run_id)


def run_all(defs: dg.Definitions, instance: dg.DagsterInstance,
            runs: Sequence[tuple[str, str | None]], handler: logging.Handler,
            start: float | None = None, out: Callable[[str], None] = print,
            live: bool = False) -> list[Outcome]:
    """Execute ``runs`` in order, one line each to ``out`` as it finishes; stop at the first
    failure. ``live``: also show the run in progress on a line that the result overwrites
    (a terminal)."""
    start = time.perf_counter() if start is None else start
    prior = history(instance, runs)
    durations: dict[str, list[float]] = {}
    outcomes: list[Outcome] = []
    for i, (name, key) in enumerate(runs):
        if live:
            left = estimate_left([j for j, _ in runs[i:]], durations, prior)
            line = progress_line(name, key, "running", 0, {}, i, len(runs),
                                 time.perf_counter() - start, left)
            sys.stdout.write("\r\033[K" + line.replace(" running 0s", " running…"))
            sys.stdout.flush()
        o = run_one(defs.resolve_job_def(name), instance, key, handler)
        outcomes.append(o)
        durations.setdefault(name, []).append(o.seconds)
        left = estimate_left([j for j, _ in runs[i + 1:]], durations, prior)
        line = progress_line(name, key, "ok" if o.success else "FAILED", o.seconds, o.counts,
                             i + 1, len(runs), time.perf_counter() - start, left)
        out(("\r\033[K" if live else "") + line)
        if not o.success:
            break
    return outcomes
