"""Peak memory of reading a packed dataset for training as it grows: the streamed row-group
reader (models.streamed_data) against reading it whole into memory (the earlier
`PackedData.from_rows` path), and the frozen token weights read per row group from a file
written with the lake's default row groups (64K rows: the whole file) against one written
with row groups as bounded as the sequences'.

Each point runs in a fresh process (its peak RSS its own): the dataset of S sequences of T
tokens (parts of ``--file-rows`` rows, row groups of ``--group-rows``) with its token weights
is written to a temp folder, then read for one epoch of training batches. The exponent of
peak memory in S is a least-squares fit over the sizes (streamed target: about 0, memory
independent of the dataset's size; in-memory: about 1).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.common import PeakRSS, Record, device_name, peak_exponent, report, run_point
from lakehouse import tables

WAYS = ("in_memory", "streamed", "streamed_default_weights")


def write_dataset(folder: Path, n: int, length: int, file_rows: int, group_rows: int,
                  weight_group_rows: int) -> tuple[list[str], str]:
    rng = np.random.default_rng(0)
    seq = folder / "sequences"
    seq.mkdir(parents=True)
    files = []
    for i in range(0, n, file_rows):
        k = min(file_rows, n - i)
        ids = rng.integers(0, 49152, (k, length), dtype=np.int32)
        table = pa.table({
            "seq_id": pa.array(np.arange(i, i + k), pa.int64()),
            "input_ids": pa.ListArray.from_arrays(np.arange(0, k * length + 1, length,
                                                            dtype=np.int32), ids.ravel()),
            "indices": [[[0, length // 2], [length // 2, length]]] * k,
            "n_pad": pa.array(np.zeros(k, np.int64))}, schema=tables.PACKED_SEQUENCES)
        path = seq / f"part-{i // file_rows:05d}.parquet"
        pq.write_table(table, path, row_group_size=group_rows)
        files.append(str(path))
    lp = -rng.exponential(2.0, (n, length)).astype(np.float32)
    weights = pa.table({
        "seq_id": pa.array(np.arange(n), pa.int64()),
        "logp_short": pa.ListArray.from_arrays(np.arange(0, n * length + 1, length,
                                                         dtype=np.int32), lp.ravel()),
        "full_context": pa.ListArray.from_arrays(
            np.arange(0, n * length + 1, length, dtype=np.int32),
            pa.array(np.zeros(n * length, bool))),
        "scorer_id": ["bench"] * n, "n": [8192] * n, "stride": [6144] * n},
        schema=tables.TOKEN_WEIGHTS)
    wpath = folder / "weights.parquet"
    pq.write_table(weights, wpath, row_group_size=weight_group_rows)
    return files, str(wpath)


def point(way: str, n: int, args) -> dict:
    """Peak RSS of one epoch of batches read the given way (run in a fresh process)."""
    from models.packed_data import PackedData
    from models.streamed_data import StreamedPackedData

    with tempfile.TemporaryDirectory() as tmp:
        weight_rows = 64 * 1024 if way == "streamed_default_weights" else args.group_rows
        files, wpath = write_dataset(Path(tmp), n, args.length, args.file_rows,
                                     args.group_rows, weight_rows)
        steps = n // (args.micro_batch * args.grad_accum)
        with PeakRSS() as mem:
            if way == "in_memory":  # what trained_model did: every row as Python lists
                seqs = pa.concat_tables([pq.read_table(f) for f in files]).to_pylist()
                data = PackedData.from_rows(seqs, pq.read_table(wpath).to_pylist())
                del seqs
                order = np.random.default_rng(0).permutation(len(data))
                for s in range(steps):
                    idx = order[s * args.micro_batch * args.grad_accum:
                                (s + 1) * args.micro_batch * args.grad_accum]
                    for k in range(args.grad_accum):
                        data.batch(idx[k * args.micro_batch:(k + 1) * args.micro_batch].tolist())
                held = len(data)
            else:
                data = StreamedPackedData(files, wpath)
                for _ in data.steps(args.micro_batch, args.grad_accum, 0, 0, steps):
                    pass
                held = data.counters.peak_rows_held
    return {"way": way, "sequences": n, "peak": mem.peak, "rows_held": held}


def _run(way: str, n: int, args) -> dict:
    return run_point("bench.streamed_data", f"{way}:{n}",
                     ["--length", str(args.length), "--file-rows", str(args.file_rows),
                      "--group-rows", str(args.group_rows)])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="64,256,1024,4096")  # sequences per dataset
    ap.add_argument("--whole-max", type=int, default=1024)  # largest S read whole (1024 x 8K
    # tokens took 0.9 GiB as Python lists; 4096 would take ~3.7 GiB of a shared machine)
    ap.add_argument("--length", type=int, default=8192)  # tokens per sequence
    ap.add_argument("--file-rows", type=int, default=256)
    ap.add_argument("--group-rows", type=int, default=16)
    ap.add_argument("--micro-batch", type=int, default=1)
    ap.add_argument("--grad-accum", type=int, default=4)
    ap.add_argument("--point", default=None)
    args = ap.parse_args(argv)
    if args.point:
        way, n = args.point.split(":")
        print(json.dumps(point(way, int(n), args)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    got = {w: [_run(w, n, args) for n in sizes if w == "streamed" or n <= args.whole_max]
           for w in WAYS}
    mib = 1 << 20
    params = {"length": args.length, "file_rows": args.file_rows,
              "group_rows": args.group_rows, "micro_batch": args.micro_batch,
              "grad_accum": args.grad_accum}
    records = []
    for i, n in enumerate(sizes):
        s = got["streamed"][i]
        if n > args.whole_max:  # the whole read projected linearly from the largest measured
            m = {"peak": got["in_memory"][-1]["peak"] * n / got["in_memory"][-1]["sequences"]}
        else:
            m = got["in_memory"][i]
        records.append(Record(f"peak MiB, streamed, S={n}", s["peak"] / mib, m["peak"] / mib,
                              s["peak"] / max(m["peak"], 1),
                              "MiB (vs whole)" if n <= args.whole_max else "MiB (vs proj.)",
                              "below the whole read", s["peak"] < m["peak"],
                              device_name(), {**params, "sequences": n,
                                              "rows_held": s["rows_held"]}))
        if n > args.whole_max:
            continue
        d = got["streamed_default_weights"][i]
        records.append(Record(f"peak MiB, weights 64K groups, S={n}", d["peak"] / mib,
                              s["peak"] / mib, d["peak"] / max(s["peak"], 1),
                              "MiB (vs bound)", "report", True, device_name(),
                              {**params, "sequences": n}))
    e_s, e_m = (peak_exponent(got[k], "sequences") for k in ("streamed", "in_memory"))
    params["sizes"] = sizes
    records.append(Record("peak-memory exponent in S, streamed", e_s, e_m,
                          e_s / e_m if e_m else math.nan, "exponent (vs whole)", "< 0.2",
                          e_s < 0.2, device_name(), params))
    report("streamed_data", records)


if __name__ == "__main__":
    main()
