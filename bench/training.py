"""Training step cost of each loss mode against the uniform loss, the blockwise loss's
peak memory against the naive full-logits loss, and the attention path's peak memory and
step time against the dense unit mask as sequences grow to 131,072 tokens.

Same model, data and DeepSpeed settings for every mode, in one run:
  * step time (median over the measured steps, after warm-up steps) and peak resident
    memory of uniform, frozen dense, frozen sparse, unfrozen dense and unfrozen sparse, on
    the trainer's attention path;
  * loss + backward peak memory and time at one long sequence: blockwise fp32 loss
    (models.weighted_loss) against `cross_entropy(lm_head(h).float())`;
  * one uniform training step at 8K, 32K and 131,072 tokens per sequence (units of 1-3K
    tokens, as packing makes them) on the trainer's attention path (per-unit SDPA on a CPU,
    gradient checkpointing above 16K by default) against the dense [B, 1, T, T] mask
    wherever the dense mask's projected peak fits the memory budget. Each point runs in a
    fresh process, so that its peak RSS is its own; the exponent of peak memory in T is a
    least-squares fit over the measured lengths (target: linear, 1).
On a CPU a small Llama with SmolLM2's vocabulary (49,152) stands in, so the LM head weighs
what it does in real models; on a GPU machine pass --model to time a real one.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from bench.common import PeakRSS, Record, device_name, peak_exponent, report
from models.registry import tiny_llama
from models.short_context import short_context_logprobs
from models.training import PackedBatch, TrainSettings, build_engine, micro_batches, micro_step


def _data(n_seq: int, length: int, vocab: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, (n_seq, length))
    spans = []
    for _ in range(n_seq):
        cuts = np.sort(rng.choice(np.arange(256, length - 256), 2, replace=False))
        spans.append([(0, int(cuts[0])), (int(cuts[0]), int(cuts[1])), (int(cuts[1]), length)])
    return ids, spans


def _unit_data(length: int, vocab: int, seed: int = 0):
    """One sequence of ``length`` tokens cut into units of 1-3K tokens."""
    rng = np.random.default_rng(seed)
    cuts, pos = [0], 0
    while length - pos > 3072:
        pos += int(rng.integers(1024, 3073))
        cuts.append(pos)
    cuts.append(length)
    return rng.integers(0, vocab, (1, length)), [list(zip(cuts[:-1], cuts[1:], strict=True))]


def memory_point(attention: str, length: int, args) -> dict:
    """Peak RSS and time of one uniform training step (run in a fresh process)."""
    ids, spans = _unit_data(length, args.vocab)
    settings = TrainSettings(steps=1, micro_batch=1, grad_accum=1, lr=1e-4, warmup_steps=0,
                             zero_stage=0, block_size=args.block_size, attention=attention)
    model = tiny_llama(args.vocab, args.layers, args.hidden, head_dim=64,
                       max_positions=max(length, 2048))
    engine = build_engine(model, settings)
    batch = PackedBatch(torch.from_numpy(ids), spans)
    tokens = int(sum(e - a - 1 for a, e in spans[0]))
    gc.collect()
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        micro_step(engine, settings, batch, tokens)
        engine.step()
        seconds = time.perf_counter() - t0
    return {"attention": attention, "length": length, "peak": mem.peak, "seconds": seconds,
            "units": len(spans[0]), "checkpointing": settings.checkpointing(length),
            "implementation": engine.module.config._attn_implementation}


def _run_point(attention: str, length: int, args) -> dict:
    cmd = [sys.executable, "-m", "bench.training", "--point", f"{attention}:{length}",
           "--vocab", str(args.vocab), "--layers", str(args.layers), "--hidden",
           str(args.hidden), "--block-size", str(args.block_size)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"attention": attention, "length": length, "error": out.stderr[-2000:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def exponent(points: list[dict]) -> float:
    """Least-squares slope of log(peak) against log(T)."""
    return peak_exponent(points, "length")


def attention_records(args) -> list[Record]:
    """Peak memory and step time per length: the trainer's path against the dense mask."""
    lengths = [int(x) for x in args.memory_lengths.split(",") if x]
    budget = args.memory_budget_gib * 2**30
    new, dense, records = [], [], []
    for length in (int(x) for x in args.dense_lengths.split(",") if x):
        q = _run_point("dense_mask", length, args)  # shorter ones, for the dense exponent
        print(json.dumps(q), flush=True)
        if "error" not in q:
            dense.append(q)
    for length in lengths:
        p = _run_point("auto", length, args)
        print(json.dumps(p), flush=True)
        if "error" in p:
            raise RuntimeError(f"attention path failed at {length}: {p['error']}")
        new.append(p)
        # the dense mask's peak grows as T^2: project it from the last measured point
        guess = dense[-1]["peak"] * (length / dense[-1]["length"]) ** 2 if dense else 0.0
        q = None
        if guess <= budget:
            q = _run_point("dense_mask", length, args)
            print(json.dumps(q), flush=True)
            if "error" in q:
                q = None
            else:
                dense.append(q)
        if q:
            how = "measured"
        elif guess:
            how = (f"not run: projected peak {guess / 2**30:.1f} GiB > budget "
                   f"{args.memory_budget_gib} GiB")
        else:
            how = "failed"
        params = {"length": length, "vocab": args.vocab, "layers": args.layers,
                  "hidden": args.hidden, "units": p["units"],
                  "checkpointing": p["checkpointing"], "implementation": p["implementation"],
                  "dense_mask": how}
        base_m = q["peak"] / 2**20 if q else math.nan
        base_t = q["seconds"] if q else math.nan
        records.append(Record(f"step peak RSS at {length}: unit path / dense", p["peak"] / 2**20,
                              base_m, p["peak"] / 2**20 / base_m, "MiB",
                              "completes; < dense where it fits",
                              not q or p["peak"] < q["peak"], device_name(), params))
        records.append(Record(f"step time at {length}: unit path / dense", p["seconds"],
                              base_t, p["seconds"] / base_t, "s/step", "reported", True,
                              device_name(), params))
    fit = exponent(new)  # over the measured lengths (fixed costs flatten the shortest)
    lens = {"lengths": lengths, "dense_lengths": [d["length"] for d in dense]}
    records.append(Record("peak RSS exponent in T: unit path (dense)", fit, exponent(dense),
                          math.nan, "dlogM/dlogT", "<= 1.15 (linear)", fit <= 1.15,
                          device_name(), lens))
    # between the two longest lengths, where the fixed costs (weights, optimizer state, one
    # LM-head block) weigh least: the growth itself
    last = exponent(new[-2:])
    records.append(Record("peak RSS exponent, two longest: unit (dense)", last,
                          exponent(dense[-2:]), math.nan, "dlogM/dlogT", "<= 1.15 (linear)",
                          last <= 1.15, device_name(),
                          {"lengths": [p["length"] for p in new[-2:]],
                           "dense_lengths": [d["length"] for d in dense[-2:]]}))
    return records


def time_mode(mode: str, frozen: bool, args, ids, spans, frozen_scores) -> tuple[float, int]:
    settings = TrainSettings(mode=mode, frozen=frozen, n=args.n, steps=args.warmup + args.steps,
                             micro_batch=1, grad_accum=1, lr=1e-4, warmup_steps=0,
                             zero_stage=args.zero_stage, block_size=args.block_size)
    model = tiny_llama(args.vocab, args.layers, args.hidden, head_dim=64, max_positions=65536)
    engine = build_engine(model, settings)
    times = []
    with PeakRSS() as mem:
        for step, micro in micro_batches(len(ids), settings, 0):
            (idx,) = micro
            lp, fc = frozen_scores
            batch = PackedBatch(torch.from_numpy(ids[idx]), [spans[i] for i in idx],
                                torch.from_numpy(lp[idx]), torch.from_numpy(fc[idx]))
            t0 = time.perf_counter()
            tokens = int(sum(e - a - 1 for a, e in batch.spans[0]))
            micro_step(engine, settings, batch, tokens)
            engine.step()
            if step >= args.warmup:
                times.append(time.perf_counter() - t0)
    del engine, model
    gc.collect()
    return statistics.median(times), mem.peak


def loss_memory(args) -> tuple[float, float, int, int]:
    """(blockwise s, naive s, blockwise peak bytes, naive peak bytes) for loss + backward."""
    from models.weighted_loss import weighted_nll_sum

    torch.manual_seed(0)
    h = torch.randn(1, args.loss_length, args.hidden, requires_grad=True)
    head = torch.nn.Linear(args.hidden, args.vocab, bias=False)
    ids = torch.randint(0, args.vocab, (1, args.loss_length))
    w = torch.rand(1, args.loss_length)

    def blockwise():
        loss, _ = weighted_nll_sum(h, head, ids, w, args.block_size)
        loss.backward()

    def naive():
        logp = torch.log_softmax(head(h).float(), -1)
        nll = -logp[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)
        (w[:, 1:] * nll).sum().backward()

    out = []
    for fn in (blockwise, naive):
        gc.collect()
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0, mem.peak))
        h.grad = None
        head.weight.grad = None
    return out[0][0], out[1][0], out[0][1], out[1][1]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--vocab", type=int, default=49152)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--length", type=int, default=4096)
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--steps", type=int, default=6)  # medians: the machine is shared
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--zero-stage", type=int, default=0)
    p.add_argument("--block-size", type=int, default=1024)
    p.add_argument("--loss-length", type=int, default=16384)
    p.add_argument("--memory-lengths", default="8192,32768,131072")
    p.add_argument("--dense-lengths", default="2048,4096")  # dense only: its exponent
    p.add_argument("--memory-budget-gib", type=float, default=6.0)  # shared machine: keep low
    p.add_argument("--skip-modes", action="store_true")  # only the attention records
    p.add_argument("--skip-memory", action="store_true")  # only the loss-mode records
    p.add_argument("--point", help=argparse.SUPPRESS)  # internal: one memory point
    args = p.parse_args(argv)
    if args.point:
        attention, length = args.point.split(":")
        print(json.dumps(memory_point(attention, int(length), args)))
        return
    records = [] if args.skip_memory else attention_records(args)
    if args.skip_modes:
        report("training", records)
        return

    ids, spans = _data(args.warmup + args.steps, args.length, args.vocab)
    scorer = tiny_llama(args.vocab, args.layers, args.hidden, seed=1, head_dim=64,
                        max_positions=65536).eval()
    frozen_scores = short_context_logprobs(scorer, ids, spans, args.n, args.n // 4,
                                           first_window=True)  # frozen: every token
    del scorer
    modes = [("uniform", True), ("dense", True), ("sparse", True), ("dense", False),
             ("sparse", False)]
    # a throw-away engine first: the process's one-time costs (DeepSpeed's first engine,
    # allocator growth) must not land on the baseline measured first
    time_mode("uniform", True, argparse.Namespace(**{**vars(args), "steps": 1}), ids, spans,
              frozen_scores)
    results = {m: time_mode(m[0], m[1], args, ids, spans, frozen_scores) for m in modes}
    base_t, base_m = results[("uniform", True)]
    params = {"vocab": args.vocab, "layers": args.layers, "hidden": args.hidden,
              "length": args.length, "n": args.n, "steps": args.steps,
              "zero_stage": args.zero_stage}
    for (mode, frozen), (t, m) in results.items():
        if mode == "uniform":
            continue
        target = 1.05 if frozen else 1.3
        kind = "frozen" if frozen else "unfrozen"
        records.append(Record(f"step time {kind} {mode} / uniform", t, base_t, t / base_t,
                              "s/step", f"<= {target}x", t / base_t <= target, device_name(),
                              params))
        records.append(Record(f"peak RSS {kind} {mode} / uniform", m / 2**20, base_m / 2**20,
                              m / max(base_m, 1), "MiB", "reported", True, device_name(),
                              params))
    bt, nt, bm, nm = loss_memory(args)
    lp = {"tokens": args.loss_length, "vocab": args.vocab, "block_size": args.block_size}
    records.append(Record("loss+backward peak, blockwise / full logits", bm / 2**20,
                          nm / 2**20, bm / max(nm, 1), "MiB", "< 1", bm < nm, device_name(), lp))
    records.append(Record("loss+backward time, blockwise / full logits", bt, nt, bt / nt, "s",
                          "reported", True, device_name(), lp))
    report("training", records)


if __name__ == "__main__":
    main()
