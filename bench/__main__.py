"""``python -m bench``: run every benchmark in turn."""

from __future__ import annotations

import importlib

BENCHMARKS = ["ingest", "entropy", "retrieval", "planted", "verification", "packing",
              "training"]


def main() -> None:
    for name in BENCHMARKS:
        importlib.import_module(f"bench.{name}").main()


if __name__ == "__main__":
    main()
