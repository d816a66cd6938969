"""Training step cost of each loss mode against the uniform loss, and the blockwise loss's
peak memory against the naive full-logits loss.

Same model, data and DeepSpeed settings for every mode, in one run:
  * step time (median over the measured steps, after warm-up steps) and peak resident
    memory of uniform, frozen dense, frozen sparse, unfrozen dense and unfrozen sparse;
  * loss + backward peak memory and time at one long sequence: blockwise fp32 loss
    (models.weighted_loss) against `cross_entropy(lm_head(h).float())`.
On a CPU a small Llama with SmolLM2's vocabulary (49,152) stands in, so the LM head weighs
what it does in real models; on a GPU machine pass --model to time a real one.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

import numpy as np
import torch

from bench.common import PeakRSS, Record, device_name, report
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
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--zero-stage", type=int, default=0)
    p.add_argument("--block-size", type=int, default=1024)
    p.add_argument("--loss-length", type=int, default=16384)
    args = p.parse_args(argv)

    ids, spans = _data(args.warmup + args.steps, args.length, args.vocab)
    scorer = tiny_llama(args.vocab, args.layers, args.hidden, seed=1, head_dim=64,
                        max_positions=65536).eval()
    frozen_scores = short_context_logprobs(scorer, ids, spans, args.n, args.n // 4)
    del scorer
    modes = [("uniform", True), ("dense", True), ("sparse", True), ("dense", False),
             ("sparse", False)]
    results = {m: time_mode(m[0], m[1], args, ids, spans, frozen_scores) for m in modes}
    base_t, base_m = results[("uniform", True)]
    params = {"vocab": args.vocab, "layers": args.layers, "hidden": args.hidden,
              "length": args.length, "n": args.n, "steps": args.steps,
              "zero_stage": args.zero_stage}
    records = []
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
