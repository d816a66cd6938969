"""Peak memory of the token_weights stage as the packed dataset grows: streamed (what the
asset runs: ``short_context_row_groups`` over ``packed_files.row_groups``, written by
``write_row_groups``, one row group in and out at a time) against the whole-dataset way it
ran before (every sequence read into Python lists, every log-prob held, then one write).

Each point runs in a fresh process (its peak RSS its own). The scorer is a small random
Llama (2 layers, 64 wide, 1,024-token vocabulary, context n): the benchmark measures what
the stage holds of the *data*, which does not depend on the scorer's size, and a small one
keeps the points quick. Both ways score the same windows, so the rows written must be
equal: a hash of the written seq_id, log-prob and full_context values is compared. The
exponent of peak memory in S is a least-squares fit over the sizes (streamed target: about
0; whole: about 1). At small S the fixed costs (model, one batch's activations) dominate
both ways, so the per-size peaks are reported and the exponent is the target.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.common import PeakRSS, Record, device_name, peak_exponent, report, run_point
from lakehouse import tables
from lakehouse.packed_files import (
    dataset_files,
    read_sequences,
    row_groups,
    write_part,
    write_row_groups,
    write_sequences,
)

WAYS = ("whole", "streamed")
VOCAB = 1024


def scorer(n: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=n, tie_word_embeddings=False)
    return LlamaForCausalLM(config).eval()


def write_dataset(folder: str, n: int, length: int, group_rows: int) -> None:
    """``n`` packed sequences of ``length`` tokens, three units each, as packing writes them."""
    rng = np.random.default_rng(0)
    cut = [0, length // 4, length // 2, length]
    table = pa.table({
        "seq_id": pa.array(np.arange(n), pa.int64()),
        "input_ids": pa.ListArray.from_arrays(
            np.arange(0, n * length + 1, length, dtype=np.int32),
            rng.integers(0, VOCAB, n * length, dtype=np.int32)),
        "indices": [[[a, e] for a, e in zip(cut[:-1], cut[1:], strict=True)]] * n,
        "n_pad": pa.array(np.zeros(n, np.int64))}, schema=tables.PACKED_SEQUENCES)
    write_sequences(table, folder, max_file_mb=64, row_group_rows=group_rows)


def point(way: str, n: int, args) -> dict:
    """Peak RSS of the stage over a dataset of ``n`` sequences (run in a fresh process)."""
    import torch

    from models.short_context import (
        ShortContextSummary,
        short_context_row_groups,
        short_context_table,
    )

    torch.set_num_threads(1)
    model = scorer(args.n)
    overlap = args.n // 4
    consts = {"scorer_id": "bench", "n": args.n, "stride": args.n - overlap}
    with tempfile.TemporaryDirectory() as tmp:
        folder = str(Path(tmp) / "packed")
        write_dataset(folder, n, args.length, args.group_rows)
        out = str(Path(tmp) / "weights.parquet")
        with torch.no_grad(), PeakRSS() as mem:
            if way == "whole":  # what the asset did: to_pylist of every row, then one write
                seqs = read_sequences(folder, ["seq_id", "input_ids", "indices"])
                got = short_context_table(model, *(seqs[c].to_pylist() for c in (
                    "seq_id", "input_ids", "indices")), args.n, overlap, args.budget, 256)
                cols = got["columns"]
                cols.update({k: [v] * n for k, v in consts.items()})
                write_part(pa.Table.from_pydict(cols, schema=tables.TOKEN_WEIGHTS), out,
                           args.group_rows)
            else:
                summary = ShortContextSummary(args.n)
                groups = short_context_row_groups(
                    model, row_groups(dataset_files(folder), ["seq_id", "input_ids",
                                                              "indices"]),
                    args.n, overlap, args.budget, 256, summary)
                write_row_groups(out, tables.TOKEN_WEIGHTS, (pa.Table.from_pydict(
                    {**g, **{k: [v] * len(g["seq_id"]) for k, v in consts.items()}},
                    schema=tables.TOKEN_WEIGHTS) for g in groups), args.group_rows)
        written = pq.read_table(out, columns=["seq_id", "logp_short", "full_context"])
        check = hashlib.sha256()
        for name in written.column_names:  # the values and their row boundaries
            column = written[name].combine_chunks()
            for buf in ([column] if name == "seq_id" else [column.offsets, column.values]):
                check.update(buf.to_numpy(zero_copy_only=False).tobytes())
    return {"way": way, "sequences": n, "peak": mem.peak, "check": check.hexdigest()}


def _run(way: str, n: int, args) -> dict:
    return run_point("bench.token_weights", f"{way}:{n}",
                     ["--length", str(args.length), "--group-rows", str(args.group_rows),
                      "--n", str(args.n), "--budget", str(args.budget)])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="32,128,512")  # sequences per dataset
    ap.add_argument("--length", type=int, default=8192)  # tokens per sequence
    ap.add_argument("--group-rows", type=int, default=16)
    ap.add_argument("--n", type=int, default=1024)  # the short context
    ap.add_argument("--budget", type=int, default=8192)
    ap.add_argument("--point", default=None)
    args = ap.parse_args(argv)
    if args.point:
        way, n = args.point.split(":")
        print(json.dumps(point(way, int(n), args)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    got = {w: [_run(w, n, args) for n in sizes] for w in WAYS}
    mib = 1 << 20
    params = {"length": args.length, "group_rows": args.group_rows, "n": args.n,
              "sizes": sizes}
    records = []
    for s, m in zip(got["streamed"], got["whole"], strict=True):
        same = s["check"] == m["check"]  # byte-equal rows
        records.append(Record(f"peak MiB, streamed, S={s['sequences']}", s["peak"] / mib,
                              m["peak"] / mib, s["peak"] / max(m["peak"], 1),
                              "MiB (vs whole)", "same rows as the whole run", same,
                              device_name(),
                              {**params, "sequences": s["sequences"]}))
    e_s, e_m = (peak_exponent(got[k], "sequences") for k in WAYS[::-1])
    records.append(Record("peak-memory exponent in S, streamed", e_s, e_m,
                          e_s / e_m if e_m else math.nan, "exponent (vs whole)", "< 0.2",
                          e_s < 0.2, device_name(), params))
    report("token_weights", records)


if __name__ == "__main__":
    main()
