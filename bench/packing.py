"""Packing units into 128K sequences: fill rate and assembly speed against the obvious way.

Baseline: units taken in arrival order, a new sequence started whenever the next unit does
not fit (next-fit), tokens appended to Python lists. Ours: best-fit decreasing over unit
lengths, then numpy writes into a preallocated [sequences x 131072] array. Writing the
Parquet file is timed on its own.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from bench.common import Record, device_name, report
from lakehouse.packing import Unit, assemble, best_fit_decreasing
from lakehouse.storage import write_parquet

TARGET = 131072


def synthetic_units(total_tokens: int, seed: int = 0) -> list[Unit]:
    """Roots of 200 to 20K tokens (log-normal) with 0 to 8 chunks of up to 256 tokens."""
    rng = np.random.default_rng(seed)
    units, n, i = [], 0, 0
    while n < total_tokens:
        root = rng.integers(0, 49152, int(np.clip(rng.lognormal(7.0, 0.9), 200, 20_000)),
                            dtype=np.int32)
        chunks = [rng.integers(0, 49152, int(rng.integers(64, 257)), dtype=np.int32)
                  for _ in range(int(rng.integers(0, 9)))]
        segs = tuple(chunks) + (root,)
        units.append(Unit(f"u{i}", tuple(f"s{i}-{j}" for j in range(len(segs))), segs))
        n += sum(len(s) for s in segs)
        i += 1
    return units


def next_fit_lists(units: list[Unit]) -> tuple[list[list[int]], int]:
    seqs, cur = [], []
    for u in units:
        if len(cur) + u.length > TARGET:
            seqs.append(cur + [0] * (TARGET - len(cur)))
            cur = []
        for seg in u.segments:
            cur.extend(seg.tolist())
    if cur:
        seqs.append(cur + [0] * (TARGET - len(cur)))
    return seqs, len(seqs)


def main(total_tokens: int = 10_000_000) -> None:
    units = synthetic_units(total_tokens)
    tokens = sum(u.length for u in units)
    start = time.perf_counter()
    bins = best_fit_decreasing([u.length for u in units], TARGET)
    packed = assemble(units, bins, TARGET, pad_id=0)
    t_ours = time.perf_counter() - start
    start = time.perf_counter()
    _, n_base = next_fit_lists(units)
    t_base = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        table = pa.table({"input_ids": pa.FixedSizeListArray.from_arrays(
            pa.array(packed.input_ids.reshape(-1)), TARGET)})
        start = time.perf_counter()
        write_parquet(table, Path(tmp) / "packed.parquet")
        t_write = time.perf_counter() - start
    fill, fill_base = tokens / packed.input_ids.size, tokens / (n_base * TARGET)
    params = {"tokens": tokens, "units": len(units), "target": TARGET,
              "sequences": len(bins), "baseline_sequences": n_base,
              "parquet_write_s": round(t_write, 2)}
    report("packing", [
        Record("fill rate (best-fit decreasing / next-fit)", fill, fill_base, fill / fill_base,
               "fraction", "fill >= 0.99", fill >= 0.99, device_name(), params),
        Record("assembly tokens/s (ours / python lists)", tokens / t_ours, tokens / t_base,
               t_base / t_ours, "tokens/s", ">= 10M tokens/s", tokens / t_ours >= 10e6,
               device_name(), params),
        Record("parquet write tokens/s", tokens / t_write, float("nan"), float("nan"),
               "tokens/s", "report", True, device_name(), params),
    ])


if __name__ == "__main__":
    main()
