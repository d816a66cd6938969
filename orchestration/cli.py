"""`elong`: the few commands around Dagster that the Makefile and users need.

  elong demo           write the demo corpora, register them and run the data jobs in one
                       process, one line per run (the full log in $DAGSTER_HOME/logs), then
                       print what was found (--train: also train and evaluate)
  elong run STAGE...   run jobs of orchestration/jobs.py in order, once per registered key
  elong demo-corpora   write the demo corpora's shard files (deterministic; idempotent)
  elong register       add a partition for every shard (and root shard, and training run)
  elong partitions     print the shard partition keys (--runs: training runs), one per line
  elong queries        run the canned SQL queries of sql/queries on the catalog

Errors a user can fix (a config that does not parse, a corpus location that matches nothing,
no DAGSTER_HOME, a catalog not built yet) end in one line saying what was tried and what to
do, and exit code 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from lakehouse.catalog import SQL_DIR, query
from lakehouse.demo import write_demo_corpus
from orchestration.config import load_config
from orchestration.discovery import configured_shards
from orchestration.jobs import DATA_STAGES, STAGES, TRAIN_STAGES
from orchestration.partitions import (
    ROOT_SHARDS_PARTITION_NAME,
    RUNS_PARTITION_NAME,
    SHARDS_PARTITION_NAME,
)


class UserError(Exception):
    """A problem the user can fix; printed as one line."""


def _dagster_home() -> Path:
    home = os.environ.get("DAGSTER_HOME")
    if not home or not Path(home, "dagster.yaml").is_file():
        raise UserError(f"DAGSTER_HOME={home or '(unset)'} holds no dagster.yaml: point it at a "
                        "folder with one (`make setup` makes .dagster/ from dagster.yaml)")
    return Path(home)


def _instance():
    import dagster as dg

    _dagster_home()
    return dg.DagsterInstance.get()


def cmd_demo_corpora(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    for spec in config.corpus_specs():
        if spec.demo:
            files = write_demo_corpus(spec)
            print(f"{spec.name}: {len(files)} shard file(s) under {spec.uri}")
    return 0


def _shards(config) -> list:
    """The configured shards, or a clear error when no corpus matches any file."""
    refs = configured_shards(config)
    if not refs:
        raise UserError("no shard files found in any configured corpus ("
                        + ", ".join(f"{c.name}: {c.uri}" for c in config.corpora)
                        + "): check each corpus's uri, format and glob")
    return refs


def register(config_path: Path | None, instance) -> dict[str, int]:
    """Add every configured shard, root shard and training run as a partition."""
    config = load_config(config_path)
    refs = _shards(config)
    wanted = {SHARDS_PARTITION_NAME: [r.key for r in refs],
              ROOT_SHARDS_PARTITION_NAME: [r.key for r in refs
                                           if "root" in config.roles(r.corpus)],
              RUNS_PARTITION_NAME: [r.name for r in config.training.runs]}
    added = {}
    for name, keys in wanted.items():
        known = set(instance.get_dynamic_partitions(name))
        new = [k for k in keys if k not in known]
        if new:
            instance.add_dynamic_partitions(name, new)
        added[name] = len(new)
        print(f"{name}: {len(keys)} partition(s), {len(new)} new")
    return added


def cmd_register(args: argparse.Namespace) -> int:
    with _instance() as instance:
        register(args.config, instance)
    return 0


def cmd_partitions(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    keys = [r.name for r in config.training.runs] if args.runs else \
        [r.key for r in _shards(config)]
    for key in keys:
        print(key)
    return 0


def _format_table(cols: list[str], rows: list[tuple]) -> str:
    cells = [cols] + [[str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _catalog(args: argparse.Namespace) -> tuple[str, str]:
    """(catalog path, lake root) of the config, or a clear error if it was never built."""
    config = load_config(args.config)
    catalog = config.catalog_path
    from lakehouse.storage import exists

    if not exists(catalog):
        raise UserError(f"catalog {catalog} does not exist yet: materialize stats_catalog "
                        "(`make demo`, or `dg launch --assets stats_catalog`)")
    return catalog, config.lake


def cmd_queries(args: argparse.Namespace) -> int:
    catalog, lake = _catalog(args)
    for path in sorted((SQL_DIR / "queries").glob("*.sql")):
        sql = path.read_text().strip()
        print(f"\n-- {path.relative_to(SQL_DIR.parent)}\n{sql}")
        cols, rows = query(catalog, sql, lake)
        print(_format_table(cols, rows))
    return 0


def _run(args: argparse.Namespace, stages) -> None:
    from orchestration.definitions import build_definitions
    from orchestration.jobs import run_stages

    defs = build_definitions(str(args.config) if args.config else None)
    with _instance() as instance:
        register(args.config, instance)
        run_stages(defs, instance, stages)


def cmd_run(args: argparse.Namespace) -> int:
    _run(args, args.stages)
    return 0


def summary(catalog: str, lake: str | None = None, real_corpora: list[str] | None = None
            ) -> str:
    """What a newcomer wants to see after the demo: planted quality, three dependencies as
    text, packing statistics."""
    out = []
    cols, rows = query(catalog, "SELECT level, rule, truth, kept, true_kept, "
                                "round(precision, 3) AS precision, round(recall, 3) AS recall "
                                "FROM planted_dependency_quality ORDER BY level DESC, rule", lake)
    out += ["Planted dependencies found (ground truth vs what was kept):",
            _format_table(cols, rows), ""]
    _, deps = query(catalog, "SELECT root_context, chunk_start, h_to_h_prime, delta_i, "
                             "gain_nats, dependency_class, true_source "
                             "FROM kept_dependency_samples WHERE per_root = 1 "
                             "ORDER BY gain_nats DESC NULLS LAST, doc_id LIMIT 3", lake)
    out.append("Three kept dependencies (the strongest of three roots; the judged words in "
               "**bold**):")
    for i, (root, chunk, hh, di, gain, cls, true) in enumerate(deps, 1):
        truth = "" if true is None else f"; chunk from the true source: {true}"
        out += [f"  {i}. root:  {' '.join(root.split())}",
                f"     chunk: {' '.join(chunk.split())}",
                f"     H {hh} (dI {di}), {gain} nats of NLL removed, {cls}{truth}"]
    if not deps:
        out.append("  (none kept)")
    if real_corpora:
        out += [""] + real_text_summary(catalog, lake, real_corpora)
    cols, rows = query(catalog, "SELECT * FROM packing_stats", lake)
    out += ["", "Packed datasets:", _format_table(cols, rows)]
    return "\n".join(out)


def real_text_summary(catalog: str, lake: str | None, corpora: list[str]) -> list[str]:
    """Kept dependencies of the real-text roots (their corpora have no planted truth): the
    root part, the part the chunk comes from, whether that is the root's own article (the
    part ids are "<article>/<part>"), and the figures."""
    names = ", ".join("'" + c.replace("'", "''") + "'" for c in corpora)
    _, deps = query(catalog, f"""
        SELECT rd.source_id, cd.source_id, k.root_context, k.chunk_start, v.nll, v.nll_prime,
               k.gain_nats, k.h_to_h_prime
        FROM kept_dependency_samples k
        JOIN docs rd ON rd.doc_id = k.doc_id JOIN docs cd ON cd.doc_id = k.chunk_doc_id
        JOIN verified_dependencies v ON v.doc_id = k.doc_id AND v.position = k.position
             AND v.chunk_id = k.chunk_id AND v.verified
        WHERE rd.corpus IN ({names}) AND k.per_root <= 2
        ORDER BY rd.source_id, k.gain_nats DESC NULLS LAST LIMIT 4""", lake)
    _, counts = query(catalog, f"""
        SELECT count(DISTINCT v.doc_id), count(*) FILTER (WHERE v.verified),
               count(*) FILTER (WHERE v.verified AND split_part(rd.source_id, '/', 1)
                                = split_part(cd.source_id, '/', 1))
        FROM verified_dependencies v JOIN docs rd ON rd.doc_id = v.doc_id
        JOIN docs cd ON cd.doc_id = v.chunk_doc_id WHERE rd.corpus IN ({names})""", lake)
    roots, kept, own = counts[0] if counts else (0, 0, 0)
    out = [f"Real text ({', '.join(corpora)}): {roots} root part(s), {kept} kept row(s), "
           f"{own} from the root's own article:"]
    for i, (root, part, ctx, chunk, nll, nll2, gain, hh) in enumerate(deps, 1):
        same = root.split("/")[0] == part.split("/")[0]
        where = "a part of the root's own article" if same else "another article"
        out += [f"  {i}. root {root}:  {' '.join(ctx.split())}",
                f"     chunk of {part} ({where}): {' '.join(chunk.split())}",
                f"     NLL {nll:.2f} -> {nll2:.2f} at the judged word, {gain} nats removed "
                f"over it, H {hh}"]
    if not deps:
        out.append("  (none kept)")
    return out


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def demo_log_path() -> Path:
    """Where `elong demo` writes the full Dagster log: ``$DAGSTER_HOME/logs/demo-<time>.log``."""
    return _dagster_home() / "logs" / f"demo-{time.strftime('%Y%m%d-%H%M%S')}.log"


def _run_quiet(args: argparse.Namespace, stages, log_path: Path, start: float):
    """Run the stages as :func:`_run` does, one line per run on the screen and everything
    else in ``log_path``; returns the failed run's outcome, or None."""
    from orchestration import progress

    with _instance() as instance:
        register(args.config, instance)
        runs = progress.plan(instance, stages)
        jobs = [job for job, _ in runs]
        print(f"{len(runs)} Dagster runs: " + ", ".join(
            job + (f" x{jobs.count(job)}" if jobs.count(job) > 1 else "")
            for job in dict.fromkeys(jobs)))
        with progress.log_to_file(log_path) as handler:
            from orchestration.definitions import build_definitions

            defs = build_definitions(str(args.config) if args.config else None)
            outcomes = progress.run_all(defs, instance, runs, handler, start,
                                        live=sys.stdout.isatty())
    return next((o for o in outcomes if not o.success), None)


def cmd_demo(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    log_path = demo_log_path()
    log = _shown(log_path)
    print(f"elong demo: the full Dagster log (every event, DEBUG included) goes to {log}")
    cmd_demo_corpora(args)
    failed = _run_quiet(args, DATA_STAGES + (TRAIN_STAGES if args.train else ()), log_path,
                        start)
    if failed is not None:
        run = f" (run {failed.run_id})" if failed.run_id else ""
        print(f"elong demo: {failed.job}{' ' + failed.key if failed.key else ''} failed{run}:",
              file=sys.stderr)
        for line in failed.errors or ["(no error recorded: see the log)"]:
            print(f"  {line}", file=sys.stderr)
        print(f"the full log: {log}", file=sys.stderr)
        return 1
    catalog, lake = _catalog(args)
    config = load_config(args.config)
    real = [c.name for c in config.corpora
            if c.demo.get("kind") == "wikipedia" and "root" in c.roles]
    print()
    print(summary(catalog, lake, real))
    if args.train:
        cols, rows = query(catalog, "SELECT * FROM run_comparison", lake)
        print("\nTraining runs (a 2-layer model for a few steps on CPU: a smoke test of the "
              "path, not a result; see README):")
        print(_format_table(cols, rows))
    print(f"\npipeline finished in {time.perf_counter() - start:.0f} s")
    print("UI:      make ui   (then open http://127.0.0.1:3000)")
    print(f"SQL:     .venv/bin/python -m duckdb -readonly {catalog}  "
          "(or: .venv/bin/elong queries)")
    print(f"Log:     {log}  (every Dagster event of the runs)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="elong", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=None,
                        help="pipeline config (default: $ELONG_CONFIG or pipeline.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, fn in [("demo", cmd_demo), ("run", cmd_run), ("demo-corpora", cmd_demo_corpora),
                     ("register", cmd_register), ("partitions", cmd_partitions),
                     ("queries", cmd_queries)]:
        cmd = sub.add_parser(name)
        cmd.set_defaults(fn=fn)
        if name == "partitions":
            cmd.add_argument("--runs", action="store_true",
                             help="training run names instead of shard keys")
        if name == "demo":
            cmd.add_argument("--train", action="store_true",
                             help="also score tokens, train the configured runs, evaluate")
        if name == "run":
            cmd.add_argument("stages", nargs="+", choices=[s.job for s in STAGES])
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except (UserError, FileNotFoundError, ValueError) as exc:
        print(f"elong {args.command}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if not _storage_error(exc):
            raise
        print(f"elong {args.command}: cannot reach the storage ({type(exc).__name__}: "
              f"{' '.join(str(exc).split())}): check the lake and corpus URLs, "
              "AWS_ENDPOINT_URL and the credentials", file=sys.stderr)
        return 1


def _storage_error(exc: BaseException) -> bool:
    """An unreachable or refusing object store (or file system), as fsspec backends raise it:
    OSError and its kin, or the S3 client's own exceptions."""
    module = type(exc).__module__ or ""
    return isinstance(exc, OSError) or module.split(".")[0] in (
        "botocore", "aiobotocore", "s3fs", "fsspec", "aiohttp")


if __name__ == "__main__":
    sys.exit(main())
