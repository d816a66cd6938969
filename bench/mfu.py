"""Model FLOP utilisation of scoring and verification: the kernel's achieved FLOP/s over the
device's peak, for SmolLM2-135M (its real weights) and a 1B-class model (Llama-3.2-1B's
shape with random weights: FLOP/s do not depend on the values, and nothing is downloaded).

What runs is the pipeline's own code: ``score_sequences`` (the entropy stage's kernel) on
``--docs`` documents of ``--tokens`` tokens, and ``verify_candidates`` (the verification
stage: shared chunks, packed batches, H' at every position) on a synthetic candidate table
of the same documents: ``--anchors`` anchors per root, K = 8 candidates each drawn from a
pool of ``--pool`` chunks of 256 tokens, so chunks are shared between roots as retrieval
shares them. Model FLOPs are counted as bench.cost counts them (2 x the matmul parameters
per token through the body, 2 x d_model x vocab per LM-head row, 4 x layers x d_model x the
keys each token attends to), from what the stage reports it forwarded.

The peak is measured in the same run: the best of a few large matmuls in the model's dtype
(bf16 on CUDA, fp32 on CPU). ``--peak-tflops`` adds the MFU against a nominal peak (H100 /
H200 SXM dense bf16: 989). The issue's target (MFU >= 0.45) is judged on CUDA; on a CPU the
lines are reported. ``python -m bench.mfu [--models smollm2,1b] [--docs 8] [--tokens 2048]``;
on a GPU the defaults finish in milliseconds, so give it more work (the README's command).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from bench.common import Record, device_name, report
from bench.cost import LLAMA32_1B, SMOLLM2_135M, ModelSpec

K = 8
CHUNK = 256


def load(name: str, device: str, dtype):
    """(model, ModelSpec) for ``smollm2`` (the built-in weights) or ``1b`` (random)."""
    import torch

    if name == "smollm2":
        from models.registry import load_scorer

        model, _ = load_scorer("smollm2-135m", dtype=str(dtype).split(".")[-1], device=device)
        return model, spec_of(model, SMOLLM2_135M.name)
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=LLAMA32_1B.vocab, hidden_size=LLAMA32_1B.d_model,
                         intermediate_size=8192, num_hidden_layers=LLAMA32_1B.layers,
                         num_attention_heads=32, num_key_value_heads=8,
                         max_position_embeddings=131072, tie_word_embeddings=True)
    model = LlamaForCausalLM(config).to(device=device, dtype=dtype).eval()
    return model, spec_of(model, "llama-3.2-1b shape")


def spec_of(model, name: str) -> ModelSpec:
    """The ModelSpec of a loaded causal LM, counted from its own parameters and config."""
    c = model.config
    params = sum(p.numel() for p in model.parameters())  # a tied matrix is one parameter
    return ModelSpec(name, float(params), int(c.num_hidden_layers), int(c.hidden_size),
                     int(c.vocab_size), bool(getattr(c, "tie_word_embeddings", False)))


def peak_flops(device: str, dtype, n: int | None = None, repeats: int = 5) -> float:
    """Best matmul FLOP/s of an n x n product in ``dtype`` on ``device`` (n: 8,192 on a GPU,
    large enough to reach its peak; 4,096 on a CPU)."""
    import torch

    n = n or (8192 if device == "cuda" else 4096)

    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = math.inf
    for _ in range(repeats + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best


def attention_keys(lengths) -> float:
    """Keys attended over sequences run whole and causal: sum of n (n + 1) / 2."""
    return float(sum(n * (n + 1) / 2 for n in lengths))


def inputs(vocab: int, docs: int, tokens: int, anchors: int, pool: int, seed: int = 0):
    """Random documents, a pool of chunks and a candidate table (doc_id, position,
    chunk_id): each anchor's K candidates drawn from the pool, so roots share chunks."""
    rng = np.random.default_rng(seed)
    doc_tokens = {f"d{i}": rng.integers(100, vocab, tokens) for i in range(docs)}
    chunk_tokens = {f"c{i}": rng.integers(100, vocab, CHUNK) for i in range(pool)}
    rows: dict[str, list] = {"doc_id": [], "position": [], "chunk_id": []}
    for d in doc_tokens:
        for t in np.sort(rng.choice(np.arange(1, tokens), anchors, replace=False)):
            for c in rng.choice(pool, min(K, pool), replace=False):
                rows["doc_id"].append(d)
                rows["position"].append(int(t))
                rows["chunk_id"].append(f"c{c}")
    return doc_tokens, chunk_tokens, rows


def _timed(fn, device: str):
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def measure(name: str, args, device: str, dtype) -> list[dict]:
    """Achieved FLOP/s of scoring and of verification for one model (after a warm-up)."""
    import torch

    from models.scoring import ScoringConfig, score_sequences
    from models.verification import VerifySettings, verify_candidates

    model, spec = load(name, device, dtype)
    cfg = ScoringConfig(window=max(args.tokens + CHUNK + 1, 2048), overlap=1024,
                        token_budget=args.budget, block_size=args.block)
    docs, chunks, cands = inputs(spec.vocab, args.docs, args.tokens, args.anchors, args.pool)
    seqs = list(docs.values())
    out = []
    with torch.no_grad():
        score_sequences(model, seqs[:1], cfg)  # warm-up (allocator, kernels)
        _, secs = _timed(lambda: score_sequences(model, seqs, cfg), device)
        n_tok = sum(map(len, seqs))
        flops = spec.forward_flops(n_tok, n_tok, attention_keys(map(len, seqs)) / n_tok)
        out.append({"model": spec.name, "stage": "scoring", "tokens": n_tok, "s": secs,
                    "flops": flops})
        settings = VerifySettings()
        v, secs = _timed(lambda: verify_candidates(model, cfg, cands, docs, chunks, settings),
                         device)
        head_rows = sum(len(p.positions) for p in v.passes) + sum(
            len(np.unique(np.concatenate([p.positions for p in v.passes if p.doc_id == d])))
            for d in docs)
        # keys attended: each distinct chunk once (causal), each root segment after its
        # chunk (all the chunk's keys, then its own causal), each baseline (causal)
        seg = [int(p.positions[-1]) + 1 for p in v.passes]
        keys = (attention_keys([CHUNK] * len({p.chunk_id for p in v.passes}))
                + sum(n * CHUNK for n in seg) + attention_keys(seg)
                + attention_keys([args.tokens] * len(docs)))
        flops = spec.forward_flops(v.forward_tokens, head_rows, keys / v.forward_tokens)
        out.append({"model": spec.name, "stage": "verification", "tokens": v.forward_tokens,
                    "s": secs, "flops": flops, "rows": len(cands["doc_id"]),
                    "passes": v.pair_passes})
    return out


def main(argv: list[str] | None = None) -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="smollm2,1b")
    ap.add_argument("--docs", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--anchors", type=int, default=8)  # per root
    ap.add_argument("--pool", type=int, default=64)  # chunks the candidates come from
    ap.add_argument("--budget", type=int, default=16384)
    ap.add_argument("--block", type=int, default=1024)
    ap.add_argument("--peak-tflops", type=float, default=None)  # nominal peak, for a 2nd MFU
    args = ap.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    peak = peak_flops(device, dtype)
    params = {**vars(args), "device": device, "dtype": str(dtype),
              "measured_peak_tflops": peak / 1e12}
    records = []
    on_gpu = device == "cuda"
    for name in args.models.split(","):
        for r in measure(name, args, device, dtype):
            rate = r["flops"] / r["s"]
            p = {**params, **r, "tflops": rate / 1e12}
            records.append(Record(f"MFU {r['stage']}, {r['model']} (measured peak)", rate / 1e12,
                                  peak / 1e12, rate / peak, "TFLOP/s",
                                  ">= 0.45 on a GPU" if on_gpu else "reported (CPU)",
                                  rate / peak >= 0.45 or not on_gpu, device_name(), p))
            if args.peak_tflops:
                nominal = args.peak_tflops * 1e12
                records.append(Record(f"MFU {r['stage']}, {r['model']} (nominal peak)",
                                      rate / 1e12, args.peak_tflops, rate / nominal,
                                      "TFLOP/s", ">= 0.45", rate / nominal >= 0.45,
                                      device_name(), p))
            records.append(Record(f"tokens/s {r['stage']}, {r['model']}", r["tokens"] / r["s"],
                                  math.nan, math.nan, "tokens/s", "reported", True,
                                  device_name(), p))
    report("mfu", records)


if __name__ == "__main__":
    main()
