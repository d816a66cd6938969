"""What a real EntropyLong run costs, per stage, from tokens and FLOPs (issue 16, item 4).

Each stage's work is counted the way the pipeline counts it: scoring forwards every root
token once (``entropy_profiles.tokens``), embedding every pool token once plus one query
window per anchor, verification the tokens of its pair passes and baselines
(``Verification.forward_tokens``: one pass per (root, chunk) over ``[chunk; root]``, the
root read at every position by default), training its tokens. FLOPs per token:

* dense forward ``2 * matmul parameters`` (the input embedding is a lookup, not counted; the
  LM head ``2 * vocab * d_model`` only on the rows that are read), training ``6 *`` that
  (forward plus backward, no recomputation);
* attention ``4 * layers * d_model * c`` per token forward (scores and the weighted sum,
  ``c`` keys per query: ``(L + 1) / 2`` for a causal sequence of L tokens, ``L`` for the
  bidirectional embedder), 3x that in training.

GPU stages convert FLOPs to GPU-hours at ``gpu_flops * mfu``. Index build, retrieval and
packing are CPU work, in CPU core-hours: the IVF-HNSW index counted as distance evaluations
(``2 * dim`` FLOPs each, at ``cpu_efficiency`` of a core's matmul rate): a build inserts each
row with one distance per IVF list plus ``M * ef_construction`` in its graph (LanceDB's
defaults M 20, ef_construction 150); a query costs one distance per list plus
``(ef + log2 rows) * M`` per graph probed (lakehouse.vector_index: one graph per 1M rows,
1 + lists / 4 probed). Packing is tokens at an assumed per-core rate. BM25 (the lexical side
of hybrid retrieval) is not modelled.

``python -m bench.cost`` (or ``python -m bench cost``): measures this CPU's matmul FLOP/s,
checks the model against the demo lake's measured step times (the Dagster event log under
.dagster, when a ``make demo`` left one; ``--dagster DIR``), prints the paper-scale table
(100K roots, a 1B-chunk pool, Llama-3-8B scorer and trained model, H100 bf16 dense 989
TFLOP/s, MFU 0.45) and writes bench/results/cost.json.

Measured on this project's 2 shared CPU cores: fp32 matmul 200 GFLOP/s when the machine is
quiet (22-32 under a load of 5-6); the demo's model stages reached 15-20 GFLOP/s (scoring,
embedding, verification, with model loading and the other steps of a parallel run in the
same minutes) and bench.training's step 28, so the model predicts them to within 7-13x at
the quiet matmul rate and 1-2x at the loaded one: on a shared CPU the load, not the FLOPs,
sets the time. The paper-scale table: ~3,060 GPU-hours, 86% of them verification.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import sqlite3
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bench.common import Record, device_name, report


@dataclass(frozen=True)
class ModelSpec:
    """A transformer's size as the FLOP count needs it."""

    name: str
    params: float  # all parameters (a tied embedding counted once)
    layers: int
    d_model: int
    vocab: int
    tied: bool  # input embedding and LM head share one matrix

    @property
    def body(self) -> float:
        """Parameters used as matmuls on every token: all but the embedding matrices."""
        return self.params - self.vocab * self.d_model * (1 if self.tied else 2)

    @property
    def head(self) -> float:
        return self.vocab * self.d_model

    def forward_flops(self, tokens: float, head_rows: float, context: float) -> float:
        """Forward FLOPs for ``tokens`` through the body, the LM head on ``head_rows`` of
        them, each token attending to ``context`` keys."""
        return (2 * self.body * tokens + 2 * self.head * head_rows
                + 4 * self.layers * self.d_model * context * tokens)

    def train_flops(self, tokens: float, context: float) -> float:
        """Forward and backward (3x forward), LM head on every token."""
        return 3 * self.forward_flops(tokens, tokens, context)


SMOLLM2_135M = ModelSpec("smollm2-135m", 134_515_008, 30, 576, 49152, True)
MINILM_L6 = ModelSpec("minilm-l6-v2", 22_713_216, 6, 384, 30522, True)  # no head used
LLAMA3_8B = ModelSpec("llama-3-8b", 8_030_261_248, 32, 4096, 128256, False)
LLAMA32_1B = ModelSpec("llama-3.2-1b", 1_235_814_400, 16, 2048, 128256, True)
TINY_2X256 = ModelSpec("tiny-2x256", 49152 * 256 + 2 * (4 * 256 * 256 + 3 * 256 * 1024),
                       2, 256, 49152, True)  # bench.training's model (approximate FFN width)
BGE_M3 = ModelSpec("bge-m3", 567_754_752, 24, 1024, 250002, True)


@dataclass(frozen=True)
class RunConfig:
    """A run to price. Defaults: the paper-scale run of issue 16."""

    roots: float = 100_000
    root_tokens: float = 4096  # mean root length (scorer tokens)
    scorer_window: float = 8192  # longer roots are scored in overlapping windows
    scorer_overlap: float = 1024
    pool_chunks: float = 1e9
    chunk_tokens: float = 256
    anchors_per_root: float = 150  # ~3.7% of 4,096 tokens (alpha 2)
    k: float = 8  # candidates per anchor
    rows_per_pair: float = 2.0  # (anchor, candidate) rows per (root, chunk) pass
    roots_per_chunk: float = 1.0  # passes sharing a chunk's keys/values (prefix_cache);
    # 1: every pass forwards its chunk
    positions: str = "all"  # verification reads every root position (all) or the anchors
    query_tokens: float = 32  # anchor query window, 2w
    embed_dim: int = 384
    kept_chunks_per_root: float = 8  # verified chunks packed before each root
    train_tokens: float = 4e9
    train_context: float = 131072  # one attention span per sequence
    short_context: float = 8192  # token weighting's frozen short-context n (0: none)
    scorer: ModelSpec = LLAMA3_8B
    embedder: ModelSpec = MINILM_L6
    trained: ModelSpec = LLAMA3_8B
    gpu_flops: float = 989e12  # H100 SXM bf16 dense
    mfu: float = 0.45
    cpu_core_flops: float = 50e9  # fp32 matmul per core (AVX-512 server core)
    cpu_efficiency: float = 0.1  # distance evaluations against matmul (random access)
    hnsw_m: float = 20  # LanceDB defaults
    hnsw_ef_construction: float = 150
    hnsw_ef_search: float = 40  # max(40, 4k) at k = 8
    hnsw_rows_per_partition: float = 1e6  # lakehouse.vector_index: one graph per 1M rows
    pack_tokens_per_core_s: float = 2e6  # assumed (Arrow list slicing and shuffles)


@dataclass
class Stage:
    name: str
    device: str  # gpu | cpu
    tokens: float  # tokens through a model (cpu stages: rows or tokens handled)
    flops: float
    note: str = ""
    seconds: float = 0.0  # at the configured rate: GPU seconds or CPU core-seconds

    @property
    def hours(self) -> float:
        return self.seconds / 3600


def scored_tokens(n: float, window: float, overlap: float) -> float:
    """Tokens forwarded to score a document of ``n`` tokens in overlapping windows."""
    if n <= window:
        return n
    windows = math.ceil((n - window) / (window - overlap)) + 1
    return windows * window


def verification_tokens(cfg: RunConfig) -> dict[str, float]:
    """Pair passes, their tokens and LM-head rows, and the baselines (as
    models.verification counts them)."""
    rows = cfg.roots * cfg.anchors_per_root * cfg.k
    pairs = rows / cfg.rows_per_pair
    if cfg.positions == "all":
        root_read, head = cfg.root_tokens, pairs * cfg.root_tokens
    else:  # cut after the pair's last anchor: about n/(n+1) of the root for n anchors
        n = cfg.rows_per_pair
        root_read, head = cfg.root_tokens * n / (n + 1), rows
    chunk_part = pairs * cfg.chunk_tokens / cfg.roots_per_chunk
    base = cfg.roots * cfg.root_tokens
    return {"rows": rows, "pairs": pairs, "pair_tokens": chunk_part + pairs * root_read,
            "head_rows": head + base, "baseline_tokens": base,
            "pass_length": cfg.chunk_tokens + root_read}


def stages(cfg: RunConfig) -> list[Stage]:
    """Tokens and FLOPs per stage for ``cfg``, with hours at its rates."""
    out = []
    sc = cfg.scorer
    score_tok = cfg.roots * scored_tokens(cfg.root_tokens, cfg.scorer_window,
                                          cfg.scorer_overlap)
    ctx = (min(cfg.root_tokens, cfg.scorer_window) + 1) / 2
    out.append(Stage("scoring", "gpu", score_tok, sc.forward_flops(score_tok, score_tok, ctx),
                     "root tokens, LM head on every row"))
    em = cfg.embedder
    pool_tok = cfg.pool_chunks * cfg.chunk_tokens
    q_tok = cfg.roots * cfg.anchors_per_root * cfg.query_tokens
    out.append(Stage("embedding", "gpu", pool_tok + q_tok,
                     em.forward_flops(pool_tok, 0, cfg.chunk_tokens)
                     + em.forward_flops(q_tok, 0, cfg.query_tokens),
                     "pool chunks + one query window per anchor, bidirectional"))
    dist = 2 * cfg.embed_dim
    parts = max(1.0, math.ceil(cfg.pool_chunks / cfg.hnsw_rows_per_partition))
    build = cfg.pool_chunks * (parts + cfg.hnsw_m * cfg.hnsw_ef_construction) * dist
    out.append(Stage("index build", "cpu", cfg.pool_chunks, build,
                     f"IVF assignment to {parts:.0f} lists + HNSW insert (M x ef_c evals)"))
    queries = cfg.roots * cfg.anchors_per_root
    probes = min(parts, 1 + parts // 4)
    levels = math.log2(max(2.0, cfg.pool_chunks / parts))  # upper layers of each graph
    per_q = (parts + probes * (cfg.hnsw_ef_search + levels) * cfg.hnsw_m) * dist
    out.append(Stage("retrieval", "cpu", queries, queries * per_q,
                     f"{probes:.0f} HNSW graphs probed per query; BM25 not modelled"))
    v = verification_tokens(cfg)
    ctx = (v["pass_length"] + 1) / 2
    vflops = (sc.forward_flops(v["pair_tokens"], 0, ctx)
              + sc.forward_flops(v["baseline_tokens"], 0, (cfg.root_tokens + 1) / 2)
              + 2 * sc.head * v["head_rows"])
    out.append(Stage("verification", "gpu", v["pair_tokens"] + v["baseline_tokens"], vflops,
                     f"{v['pairs']:.3g} passes [chunk; root], positions {cfg.positions}"))
    packed = cfg.roots * (cfg.root_tokens + cfg.kept_chunks_per_root * cfg.chunk_tokens)
    out.append(Stage("packing", "cpu", packed, 0.0, "tokens written at a per-core rate"))
    if cfg.short_context:
        n = cfg.short_context
        w_tok = cfg.train_tokens * (4 / 3 if cfg.train_context > n else 1.0)
        out.append(Stage("token weights", "gpu", w_tok,
                         sc.forward_flops(w_tok, w_tok, (n + 1) / 2),
                         f"frozen short-context scores, windows of {n:.0f}, n/4 overlap"))
    tr = cfg.trained
    out.append(Stage("training", "gpu", cfg.train_tokens,
                     tr.train_flops(cfg.train_tokens, (cfg.train_context + 1) / 2),
                     f"6N + attention at {cfg.train_context:.0f} tokens, one span"))
    gpu_rate = cfg.gpu_flops * cfg.mfu
    cpu_rate = cfg.cpu_core_flops * cfg.cpu_efficiency
    for s in out:
        if s.name == "packing":
            s.seconds = s.tokens / cfg.pack_tokens_per_core_s
        else:
            s.seconds = s.flops / (gpu_rate if s.device == "gpu" else cpu_rate)
    return out


def weekly_update(cfg: RunConfig, new_chunks: float) -> list[Stage]:
    """What adding ``new_chunks`` pool chunks costs once the run exists (issue 25): the new
    chunks embedded and merged into the index, every stored query searched against them
    alone (exact: one matrix product, at the core's matmul rate), and verification of the
    (root, chunk) pairs whose chunk is new only, their roots' baselines and every other pass
    carried over (lakehouse.pass_store). (Below ``index.exact_below`` new rows the search is
    exact; a weekly shard of a 1B pool is above it, so the ANN index answers with a shard
    pre-filter, modelled as a search of graphs holding the new rows only, as HNSW's delta
    graphs do.) New chunks are assumed as likely to be retrieved as old ones, so they take
    ``new / (pool + new)`` of the candidates. Roots are not re-scored;
    packing re-runs over all roots (CPU); training is a decision, not part of the update."""
    first = {s.name: s for s in stages(cfg)}
    share = new_chunks / (cfg.pool_chunks + new_chunks)
    em = cfg.embedder
    new_tok = new_chunks * cfg.chunk_tokens
    out = [Stage("embedding", "gpu", new_tok, em.forward_flops(new_tok, 0, cfg.chunk_tokens),
                 "the new chunks only")]
    build = first["index build"]
    out.append(Stage("index merge", "cpu", new_chunks, build.flops * new_chunks
                     / cfg.pool_chunks, "HNSW delta insert of the new rows"))
    queries = cfg.roots * cfg.anchors_per_root
    dist = 2 * cfg.embed_dim
    parts = max(1.0, math.ceil(new_chunks / cfg.hnsw_rows_per_partition))
    levels = math.log2(max(2.0, new_chunks / parts))
    per_q = parts * (cfg.hnsw_ef_search + levels) * cfg.hnsw_m * dist
    out.append(Stage("retrieval", "cpu", queries, queries * per_q,
                     f"stored lists + the new rows' {parts:.0f} HNSW graphs (pre-filter)"))
    v = verification_tokens(cfg)
    pairs = v["pairs"] * share
    root_read = v["pass_length"] - cfg.chunk_tokens
    tokens = pairs * (cfg.chunk_tokens / cfg.roots_per_chunk + root_read)
    head = pairs * (root_read if cfg.positions == "all" else cfg.rows_per_pair)
    sc = cfg.scorer
    out.append(Stage("verification", "gpu", tokens,
                     sc.forward_flops(tokens, 0, (v["pass_length"] + 1) / 2)
                     + 2 * sc.head * head,
                     f"{pairs:.3g} new passes ({share:.2%} of the pairs), baselines reused"))
    out.append(Stage("packing", "cpu", first["packing"].tokens, 0.0, "every root re-packed"))
    gpu_rate = cfg.gpu_flops * cfg.mfu
    for s in out:
        if s.name == "packing":
            s.seconds = s.tokens / cfg.pack_tokens_per_core_s
        else:
            s.seconds = s.flops / (gpu_rate if s.device == "gpu" else
                                   cfg.cpu_core_flops * cfg.cpu_efficiency)
    return out


def print_table(title: str, rows: list[Stage]) -> None:
    print(f"\n== {title}")
    head = f"{'stage':14} {'device':6} {'tokens/rows':>12} {'FLOPs':>10} {'hours':>10}  note"
    print(head)
    print("-" * len(head))
    for s in rows:
        unit = "GPU-h" if s.device == "gpu" else "core-h"
        print(f"{s.name:14} {s.device:6} {s.tokens:12.3g} {s.flops:10.3g} "
              f"{s.hours:10.4g} {unit:6} {s.note}")
    gpu = sum(s.hours for s in rows if s.device == "gpu")
    cpu = sum(s.hours for s in rows if s.device == "cpu")
    print(f"{'total':14} {'':6} {'':>12} {'':>10} {gpu:10.4g} GPU-h, {cpu:.4g} CPU core-h")


# --- the check at demo scale ---------------------------------------------------------------
def matmul_flops(n: int = 1024, repeats: int = 5) -> tuple[float, int]:
    """This process's fp32 matmul FLOP/s (best of ``repeats``) and torch's thread count."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best, torch.get_num_threads()


def _value(entry: dict):
    data = entry.get("entry_data", {})
    for k in ("value", "text"):
        if k in data:
            return data[k]
    return None


def demo_steps(dagster_dir: str | Path) -> list[dict]:
    """Every successful step of the Dagster runs under ``dagster_dir``: asset, partition,
    seconds and the materialization's numeric metadata (the stages' own statistics)."""
    out = []
    for f in sorted(glob.glob(str(Path(dagster_dir) / "history" / "runs" / "*-*.db"))):
        db = sqlite3.connect(f)
        meta: dict[str, dict] = {}
        for typ, step, ev in db.execute("select dagster_event_type, step_key, event from "
                                        "event_logs order by id"):
            if typ == "ASSET_MATERIALIZATION":
                m = json.loads(ev)["dagster_event"]["event_specific_data"]["materialization"]
                md = {e["label"]: _value(e) for e in m.get("metadata_entries", [])}
                meta[step] = {"partition": m.get("partition"),
                              **{k: v for k, v in md.items() if isinstance(v, (int, float))}}
            elif typ == "STEP_SUCCESS":
                ms = json.loads(ev)["dagster_event"]["event_specific_data"].get("duration_ms")
                if ms is not None:
                    out.append({"asset": step, "seconds": ms / 1000, **meta.get(step, {})})
        db.close()
    return out


def demo_check(steps: list[dict], flops_per_s: float, cores: int,
               training: dict | None = None) -> list[dict]:
    """Predicted (FLOPs at this CPU's matmul rate, i.e. at MFU 1) against measured seconds
    of each demo stage; ``measured / predicted`` is 1 / the stage's effective MFU here."""
    by: dict[str, list[dict]] = {}
    for s in steps:
        by.setdefault(s["asset"], []).append(s)
    sc, em = SMOLLM2_135M, MINILM_L6
    rows = []

    def add(stage, tokens, flops, measured, note):
        pred = flops / flops_per_s
        rows.append({"stage": stage, "tokens": tokens, "flops": flops, "predicted_s": pred,
                     "measured_s": measured, "measured_over_predicted":
                     measured / pred if pred else float("nan"), "note": note})

    if "entropy_profiles" in by:
        ss = by["entropy_profiles"]
        tok = sum(s.get("tokens", 0) for s in ss)
        docs = sum(s.get("docs", 0) for s in ss) or 1
        add("scoring", tok, sc.forward_flops(tok, tok, (tok / docs + 1) / 2),
            sum(s["seconds"] for s in ss), f"{len(ss)} steps, each loads SmolLM2")
    if "chunk_embeddings" in by and "chunks" in by:
        tok = sum(s.get("chunks", 0) * s.get("mean_tokens", 0) for s in by["chunks"])
        n = sum(s.get("chunks", 0) for s in by["chunks"]) or 1
        add("embedding", tok, em.forward_flops(tok, 0, tok / n),
            sum(s["seconds"] for s in by["chunk_embeddings"]),
            "chunk tokens counted in SmolLM2 tokens; each step loads MiniLM")
    if "vector_index" in by:
        ss = by["vector_index"]
        add("index build", sum(s.get("rows", 0) for s in ss), 0.0,
            sum(s["seconds"] for s in ss), "exact below 50,000 rows: no graph built")
    if "retrieval_candidates" in by:
        ss = by["retrieval_candidates"]
        q = sum(s.get("anchors", 0) for s in ss)
        rows_idx = sum(s.get("rows", 0) for s in by.get("vector_index", []))
        add("retrieval", q, em.forward_flops(q * 32, 0, 32) + q * rows_idx * 2 * 384,
            sum(s["seconds"] for s in ss), "query embedding + exact cosine; BM25 not counted")
    if "verified_dependencies" in by and "retrieval_candidates" in by:
        ss = by["verified_dependencies"]
        tok = sum(s.get("forward_tokens", 0) for s in ss)
        pairs = sum(s.get("pairs", 0) for s in ss) or 1
        chunk_mean = 180.0  # the demo's chunks: 156-205 tokens mean per shard
        head = max(tok - pairs * chunk_mean, 0)  # positions all: the head on root rows
        rows_v = sum(s.get("rows", 0) for s in ss)
        add("verification", tok, sc.forward_flops(tok, 0, (tok / pairs + 1) / 2)
            + 2 * sc.head * head, sum(s["seconds"] for s in ss),
            f"{pairs} passes ({rows_v / pairs:.2f} rows each), the stage's forward_tokens, "
            "positions all")
    for name in ("packed_dataset", "baseline_dataset"):
        if name in by:
            ss = by[name]
            add(f"packing ({name})", sum(s.get("tokens", 0) for s in ss), 0.0,
                sum(s["seconds"] for s in ss), "CPU: no FLOPs modelled")
    if training:
        add("training (bench.training)", training["tokens"],
            TINY_2X256.train_flops(training["tokens"], (training["tokens"] + 1) / 2),
            training["seconds"], "uniform loss step, 2-layer Llama, 49K vocab")
    for r in rows:
        r["cores"] = cores
    return rows


def training_step(results: Path) -> dict | None:
    """bench.training's measured uniform step (tokens, seconds), when its results exist."""
    f = results / "training.json"
    if not f.exists():
        return None
    for r in json.loads(f.read_text()):
        if r["metric"].startswith("step time") and "length" in r["params"]:
            return {"tokens": r["params"]["length"], "seconds": r["baseline"]}
    return None


def print_check(rows: list[dict], flops_per_s: float, cores: int) -> None:
    print(f"\n== demo scale on this CPU: fp32 matmul {flops_per_s / 1e9:.1f} GFLOP/s "
          f"({cores} threads, load average now {os.getloadavg()[0]:.1f}); predicted = FLOPs / "
          "that rate; measured = the demo run's Dagster step times (its own load, model "
          "loading included); GFLOP/s = FLOPs / measured s, what the stage reached")
    head = (f"{'stage':28} {'tokens':>9} {'GFLOPs':>9} {'predicted s':>12} {'measured s':>11} "
            f"{'meas/pred':>9} {'GFLOP/s':>8}  note")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['stage']:28} {r['tokens']:9.0f} {r['flops'] / 1e9:9.1f} "
              f"{r['predicted_s']:12.2f} {r['measured_s']:11.2f} "
              f"{r['measured_over_predicted']:9.2f} {r['flops'] / r['measured_s'] / 1e9:8.1f}  "
              f"{r['note']}")


def paper_scale() -> RunConfig:
    return RunConfig()


def records(check: list[dict], paper: list[Stage], cfg: RunConfig, flops_per_s: float
            ) -> list[Record]:
    dev = device_name()
    params = {k: (asdict(v) if isinstance(v, ModelSpec) else v)
              for k, v in asdict(cfg).items()}
    out = [Record(f"paper-scale {s.name} ({'GPU' if s.device == 'gpu' else 'CPU core'}-h)",
                  s.hours, float("nan"), float("nan"),
                  "GPU-h" if s.device == "gpu" else "core-h", "reported", True, "model",
                  {"tokens": s.tokens, "flops": s.flops, "note": s.note, **params})
           for s in paper]
    out.append(Record("paper-scale total GPU-hours", sum(s.hours for s in paper
                                                       if s.device == "gpu"),
                      float("nan"), float("nan"), "GPU-h", "reported", True, "model", params))
    for r in check:
        out.append(Record(f"demo {r['stage']}: predicted / measured s", r["predicted_s"],
                          r["measured_s"], r["measured_over_predicted"], "s", "reported", True,
                          dev, {**r, "cpu_matmul_flops": flops_per_s,
                                "load_average": os.getloadavg()}))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dagster", default=str(Path(__file__).resolve().parents[1] / ".dagster"),
                    help="DAGSTER_HOME of a finished demo run (its event log)")
    ap.add_argument("--roots", type=float, default=RunConfig.roots)
    ap.add_argument("--pool-chunks", type=float, default=RunConfig.pool_chunks)
    ap.add_argument("--anchors", type=float, default=RunConfig.anchors_per_root)
    ap.add_argument("--k", type=float, default=RunConfig.k)
    ap.add_argument("--root-tokens", type=float, default=RunConfig.root_tokens)
    ap.add_argument("--rows-per-pair", type=float, default=RunConfig.rows_per_pair)
    ap.add_argument("--roots-per-chunk", type=float, default=RunConfig.roots_per_chunk)
    ap.add_argument("--mfu", type=float, default=RunConfig.mfu)
    ap.add_argument("--gpu-flops", type=float, default=RunConfig.gpu_flops)
    ap.add_argument("--train-tokens", type=float, default=RunConfig.train_tokens)
    ap.add_argument("--weekly-chunks", type=float, default=1e7,
                    help="pool chunks a weekly update adds (default 1%% of the pool)")
    args = ap.parse_args(argv)
    flops_per_s, cores = matmul_flops()
    steps = demo_steps(args.dagster) if Path(args.dagster).exists() else []
    from bench.common import RESULTS

    check = demo_check(steps, flops_per_s, cores, training_step(RESULTS))
    if check:
        print_check(check, flops_per_s, cores)
    else:
        print(f"\n(no demo event log under {args.dagster}: run `make demo` for the check)")
    cfg = replace(paper_scale(), roots=args.roots, pool_chunks=args.pool_chunks,
                  anchors_per_root=args.anchors, k=args.k, root_tokens=args.root_tokens,
                  rows_per_pair=args.rows_per_pair, roots_per_chunk=args.roots_per_chunk,
                  mfu=args.mfu, gpu_flops=args.gpu_flops, train_tokens=args.train_tokens)
    paper = stages(cfg)
    print_table(f"run: {cfg.roots:.3g} roots x {cfg.root_tokens:.0f} tokens, "
                f"{cfg.pool_chunks:.3g}-chunk pool, {cfg.anchors_per_root:.0f} anchors, "
                f"K {cfg.k:.0f}, scorer {cfg.scorer.name}, trained {cfg.trained.name}, "
                f"{cfg.gpu_flops / 1e12:.0f} TFLOP/s x MFU {cfg.mfu}", paper)
    weekly = weekly_update(cfg, args.weekly_chunks)
    print_table(f"weekly update: {args.weekly_chunks:.3g} new pool chunks into the run above "
                "(incremental index, retrieval and verification)", weekly)
    data = [s for s in paper if s.name not in ("token weights", "training")]
    first_gpu = sum(s.hours for s in data if s.device == "gpu")
    week_gpu = sum(s.hours for s in weekly if s.device == "gpu")
    first_cpu = sum(s.hours for s in data if s.device == "cpu")
    week_cpu = sum(s.hours for s in weekly if s.device == "cpu")
    print(f"\nweekly update {week_gpu:,.1f} GPU-h + {week_cpu:,.0f} CPU core-h, against the "
          f"first run's data stages {first_gpu:,.1f} GPU-h + {first_cpu:,.0f} CPU core-h "
          f"({week_gpu / first_gpu:.2%} of the GPU time); a from-scratch re-run would cost "
          "the first run's again")
    recs = records(check, paper, cfg, flops_per_s)
    recs.append(Record("weekly update GPU-hours (data stages)", week_gpu, first_gpu,
                       week_gpu / first_gpu, "GPU-h", "reported", True, "model",
                       {"weekly_chunks": args.weekly_chunks,
                        "stages": {s.name: s.hours for s in weekly}}))
    report("cost", recs)


if __name__ == "__main__":
    main()
