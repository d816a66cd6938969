"""Packing units into 128K sequences: fill rate, assembly speed, the bounded part writer, and
how far apart the two layouts put a chunk and the anchor it explains.

Fill and speed. Baseline: units taken in arrival order, a new sequence started whenever the
next unit does not fit (next-fit), tokens appended to Python lists. Ours: best-fit
decreasing over unit lengths, then numpy writes into a preallocated [sequences x 131072]
array. Writing the Parquet part files (lakehouse.packed_files) is timed on its own.

Distances (packing.layout). Demo-like units (the demo's roots of a few hundred tokens with
one or two 256-token chunks, several anchors each; lengths below) packed at 8,192 (the
demo's target) and 131,072 tokens, in the unit layout (one span per unit) and the sequence
layout (one span per sequence, each root after its own chunks): the distribution of anchor
minus chunk start over every dependency, and the ratio of the medians (sequence / unit,
the baseline being today's unit layout).
"""

from __future__ import annotations

import tempfile
import time

import numpy as np
import pyarrow as pa

from bench.common import Record, best_of, device_name, report
from lakehouse import tables
from lakehouse.packed_files import write_sequences
from lakehouse.packing import (
    Unit,
    assemble,
    best_fit_decreasing,
    distance_summary,
    pack_entropylong,
    packed_tables,
)

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


def demo_like(total_tokens: int, seed: int = 0):
    """Roots of ~200-1,500 tokens (log-normal, median ~450, as the demo's), 1-2 chunks of
    256 tokens each, 1-20 anchors per (root, chunk) (the demo: 105 over 9 pairs)."""
    rng = np.random.default_rng(seed)
    roots, chunks, chunks_of, anchors = {}, {}, {}, {}
    n, i = 0, 0
    while n < total_tokens:
        r = f"r{i:06d}"
        roots[r] = rng.integers(0, 49152, int(np.clip(rng.lognormal(6.1, 0.5), 200, 1500)))
        chunks_of[r] = [f"c{i:06d}-{j}" for j in range(int(rng.integers(1, 3)))]
        for c in chunks_of[r]:
            chunks[c] = rng.integers(0, 49152, 256)
            k = int(rng.integers(1, 21))
            anchors[(r, c)] = [(int(t), 0.5) for t in
                               np.sort(rng.choice(len(roots[r]), min(k, len(roots[r])),
                                                  replace=False))]
        n += len(roots[r]) + 256 * len(chunks_of[r])
        i += 1
    return chunks_of, roots, chunks, anchors


def distance_records(total_tokens: int) -> list[Record]:
    chunks_of, roots, chunks, anchors = demo_like(total_tokens)
    out = []
    for target in (8192, TARGET):
        summaries, seconds = {}, {}
        for layout in ("unit", "sequence"):
            def pack(layout=layout, target=target):
                return pack_entropylong(chunks_of, sorted(roots), roots, chunks, target, 0,
                                        0, layout=layout, anchors=anchors)

            data = pack()
            seconds[layout] = best_of(pack, 3)  # with the dependency table (most of it)
            summaries[layout] = distance_summary(data.dependencies["distance"].to_numpy())
            summaries[layout]["sequences"] = data.stats["sequences"]
            summaries[layout]["fill_rate"] = round(data.stats["fill_rate"], 4)
        u, s = summaries["unit"], summaries["sequence"]
        params = {"target": target, "roots": len(roots), "tokens": total_tokens,
                  "unit": u, "sequence": s, "pack_seconds": {k: round(v, 2)
                                                             for k, v in seconds.items()}}
        out.append(Record(f"median distance @{target // 1024}K (sequence / unit)",
                          s["distance_median"], u["distance_median"],
                          s["distance_median"] / u["distance_median"], "tokens",
                          "report", True, device_name(), params))
        out.append(Record(f"p90 distance @{target // 1024}K (sequence / unit)",
                          s["distance_p90"], u["distance_p90"],
                          s["distance_p90"] / u["distance_p90"], "tokens", "report", True,
                          device_name(), params))
        mark = "share_beyond_32k" if target > 32768 else "share_beyond_4k"
        out.append(Record(f"{mark} @{target // 1024}K (sequence / unit)", s[mark], u[mark],
                          s[mark] / u[mark] if u[mark] else float("nan"), "fraction",
                          "sequence layout > unit layout", s[mark] > u[mark],
                          device_name(), params))
        out.append(Record(f"pack time @{target // 1024}K (sequence / unit)",
                          seconds["sequence"], seconds["unit"],
                          seconds["sequence"] / seconds["unit"], "s", "<= 1.5x",
                          seconds["sequence"] <= 1.5 * seconds["unit"], device_name(),
                          params))
    return out


def main(total_tokens: int = 10_000_000, distance_tokens: int = 2_000_000) -> None:
    units = synthetic_units(total_tokens)
    tokens = sum(u.length for u in units)
    start = time.perf_counter()
    bins = best_fit_decreasing([u.length for u in units], TARGET)
    packed = assemble(units, bins, TARGET, pad_id=0)
    t_ours = time.perf_counter() - start
    start = time.perf_counter()
    _, n_base = next_fit_lists(units)
    t_base = time.perf_counter() - start
    seqs, _ = packed_tables(packed, units)
    table = pa.Table.from_pydict(seqs, schema=tables.PACKED_SEQUENCES)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        parts = write_sequences(table, tmp, max_file_mb=256, row_group_rows=64)
        t_write = time.perf_counter() - start
    fill, fill_base = tokens / packed.input_ids.size, tokens / (n_base * TARGET)
    params = {"tokens": tokens, "units": len(units), "target": TARGET,
              "sequences": len(bins), "baseline_sequences": n_base,
              "parquet_write_s": round(t_write, 2), "part_files": len(parts)}
    report("packing", [
        Record("fill rate (best-fit decreasing / next-fit)", fill, fill_base, fill / fill_base,
               "fraction", "fill >= 0.99", fill >= 0.99, device_name(), params),
        Record("assembly tokens/s (ours / python lists)", tokens / t_ours, tokens / t_base,
               t_base / t_ours, "tokens/s", ">= 10M tokens/s", tokens / t_ours >= 10e6,
               device_name(), params),
        Record("parquet part files write tokens/s", tokens / t_write, float("nan"),
               float("nan"), "tokens/s", "report", True, device_name(), params),
        *distance_records(distance_tokens),
    ])


if __name__ == "__main__":
    main()
