"""``python -m bench``: run every benchmark in turn; ``python -m bench NAME``: one."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ["ingest", "entropy", "retrieval", "planted", "realtext", "verification",
              "incremental", "packing", "streamed_data", "token_weights", "training", "cost",
              "mfu", "method", "dagster_scale"]


def main(argv: list[str] | None = None) -> None:
    """``python -m bench``: every benchmark; ``python -m bench NAME [args]``: that one (its
    own arguments after the name)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv:
        name = argv[0]
        if name not in BENCHMARKS:
            raise SystemExit(f"unknown benchmark {name!r}; one of {', '.join(BENCHMARKS)}")
        sys.argv = [f"bench.{name}", *argv[1:]]
        importlib.import_module(f"bench.{name}").main()
        return
    for name in BENCHMARKS:
        importlib.import_module(f"bench.{name}").main()


if __name__ == "__main__":
    main()
