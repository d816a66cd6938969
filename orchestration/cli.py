"""`elong`: the few commands around Dagster that the Makefile and users need.

  elong demo-corpora   write the demo corpora's shard files (deterministic; idempotent)
  elong register       add a partition for every shard found in the configured corpora
  elong partitions     print the shard partition keys (--runs: training runs), one per line
  elong queries        run the canned SQL queries of sql/queries on the catalog
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lakehouse.catalog import SQL_DIR, query
from lakehouse.demo import write_demo_corpus
from orchestration.config import load_config
from orchestration.discovery import configured_shards
from orchestration.partitions import RUNS_PARTITION_NAME, SHARDS_PARTITION_NAME


def cmd_demo_corpora(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    for spec in config.corpus_specs():
        if spec.demo:
            files = write_demo_corpus(spec)
            print(f"{spec.name}: {len(files)} shard file(s) under {spec.uri}")
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    import dagster as dg

    config = load_config(args.config)
    wanted = {SHARDS_PARTITION_NAME: [r.key for r in configured_shards(config)],
              RUNS_PARTITION_NAME: [r.name for r in config.training.runs]}
    with dg.DagsterInstance.get() as instance:
        for name, keys in wanted.items():
            known = set(instance.get_dynamic_partitions(name))
            new = [k for k in keys if k not in known]
            if new:
                instance.add_dynamic_partitions(name, new)
            print(f"{name}: {len(keys)} partition(s), {len(new)} new")
    return 0


def cmd_partitions(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    keys = [r.name for r in config.training.runs] if args.runs else \
        [r.key for r in configured_shards(config)]
    for key in keys:
        print(key)
    return 0


def _format_table(cols: list[str], rows: list[tuple]) -> str:
    cells = [cols] + [[str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cmd_queries(args: argparse.Namespace) -> int:
    catalog = load_config(args.config).catalog_path
    for path in sorted((SQL_DIR / "queries").glob("*.sql")):
        sql = path.read_text().strip()
        print(f"\n-- {path.relative_to(SQL_DIR.parent)}\n{sql}")
        cols, rows = query(catalog, sql)
        print(_format_table(cols, rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="elong", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=None,
                        help="pipeline config (default: $ELONG_CONFIG or pipeline.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, fn in [("demo-corpora", cmd_demo_corpora), ("register", cmd_register),
                     ("partitions", cmd_partitions), ("queries", cmd_queries)]:
        cmd = sub.add_parser(name)
        cmd.set_defaults(fn=fn)
        if name == "partitions":
            cmd.add_argument("--runs", action="store_true",
                             help="training run names instead of shard keys")
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
