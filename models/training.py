"""Continued pretraining on packed sequences with the token-weighted loss, on DeepSpeed.

One optimizer step = ``grad_accum`` micro-batches of ``micro_batch`` packed sequences. Per
micro-batch: the model body runs once with attention kept inside units (models.attention:
unit boundaries from the ProLong `indices` passed as sequence lengths, positions restarting
at each unit; FlashAttention-2 varlen on CUDA, per-unit SDPA elsewhere, so memory grows
linearly with the sequence; gradient checkpointing above 16K tokens by default), the
per-token NLL comes out of the blockwise LM-head loss (models.weighted_loss), the weights
are computed from it and the short-context log-probs (frozen: precomputed by the
`token_weights` asset on every token; unfrozen: the model itself at context n, no
gradient, score 0 on each unit's first n tokens), and
sum(w * nll) / (tokens counted in the whole step) is backpropagated. DeepSpeed's own
division by the accumulation steps is switched off, so the gradient is that of the step's
weighted mean, however the step is split into micro-batches.

Data parallel over ``world`` processes (models.distributed launches them): a step's global
batch is micro_batch x grad_accum x world sequences, each rank runs its contiguous share as
its accumulation micro-batches, the token count that normalises the loss is the whole step's
(summed over the ranks), and each rank scales its loss by world because DeepSpeed averages
gradients over ranks; so w processes make the update one process makes with grad_accum x w.

Everything a resumed run needs (the step counter and the number of processes; the data order
is a function of the seed and the step: models.streamed_data) goes into the DeepSpeed
checkpoint's client state, so a run killed after a checkpoint continues with the loss curve
of an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from models.attention import (
    DENSE,
    dense_unit_mask,
    resolve_attention,
    unit_hidden,
    unit_positions,
    use_attention,
)
from models.settings import TrainSettings
from models.short_context import short_context_logprobs
from models.sparse_selection import draw_seed, scorable_fraction, sparse_weights
from models.token_weights import ignore_mask, scores, token_weights
from models.weighted_loss import BlockwiseLMHead, token_nll

POSITION_BUCKETS = (0, 512, 2048, 8192, 32768, 131072)


@dataclass
class PackedBatch:
    input_ids: torch.Tensor  # [B, T]
    spans: list[list[tuple[int, int]]]
    logp_short: torch.Tensor | None = None  # [B, T] frozen short-context log-probs
    full_context: torch.Tensor | None = None  # [B, T] bool: in the unit's first n tokens


@dataclass
class StepMetrics:
    step: int
    loss_weighted: float
    loss_unweighted: float
    tokens: int
    weight_mean: float
    weight_std: float
    weight_max: float
    weight_nonzero: float
    lr: float
    seconds: float
    loss_by_position: dict[str, float] = field(default_factory=dict)
    scorable_fraction: float = 1.0  # counted tokens with a usable score (mean per sequence)


def use_blockwise_head(model, block_size: int) -> None:
    head = model.get_output_embeddings()
    if getattr(head, "bias", None) is not None:
        raise ValueError("an LM head with a bias is not supported")
    head.__class__ = BlockwiseLMHead
    head.block_size = block_size


def set_rope_theta(model, theta: float) -> None:
    """Context extension by a larger RoPE base (the paper: 500K -> 15.3M for 8K -> 32K)."""
    config = model.config
    params = dict(getattr(config, "rope_parameters", None) or {})
    params["rope_theta"] = float(theta)
    params.setdefault("rope_type", "default")
    config.rope_parameters = params
    rotary = model.model.rotary_emb
    model.model.rotary_emb = type(rotary)(config=config).to(rotary.inv_freq.device)


def unit_attention(spans: Sequence[Sequence[tuple[int, int]]], length: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask [B, 1, T, T] bool, position ids [B, T]): the dense reference of
    models.attention.unit_hidden (T^2 memory; tests, benchmark baseline)."""
    return dense_unit_mask(spans, length), unit_positions(spans, length)


def micro_batches(n_sequences: int, settings: TrainSettings, start_step: int, rank: int = 0,
                  world: int = 1) -> Iterator[tuple[int, list[list[int]]]]:
    """(step, [sequence indices per micro-batch of this rank]) from ``start_step`` on.

    Epochs are seeded permutations, so the order at any step is known without replaying the
    earlier ones: a resumed run sees exactly the data the uninterrupted run would have. A
    step takes ``micro_batch * grad_accum * world`` sequences; rank r the r-th contiguous
    share (so one process with grad_accum g * w sees what w processes see together).
    """
    per_rank = settings.micro_batch * settings.grad_accum
    order, order_epoch = None, -1
    for step in range(start_step, settings.steps):
        first = (step * world + rank) * per_rank
        idx = []
        for k in range(first, first + per_rank):
            epoch, offset = divmod(k, n_sequences)
            if epoch != order_epoch:  # one permutation per epoch, not per sequence drawn
                order = np.random.default_rng((settings.seed, epoch)).permutation(n_sequences)
                order_epoch = epoch
            idx.append(int(order[offset]))
        yield step, [idx[i:i + settings.micro_batch]
                     for i in range(0, per_rank, settings.micro_batch)]


class BatchSource(Protocol):
    """Where a training run's micro-batches come from (models.streamed_data reads the lake;
    InMemoryBatches wraps arrays)."""

    def steps(self, micro_batch: int, grad_accum: int, seed: int, start_step: int,
              steps: int, rank: int = 0, world: int = 1
              ) -> Iterator[tuple[int, list[PackedBatch]]]: ...


@dataclass
class InMemoryBatches:
    """Sequences already in memory: ``load`` builds a micro-batch from sequence indices,
    taken in ``micro_batches``' order (a seeded permutation of all of them per epoch)."""

    load: Callable[[list[int]], PackedBatch]
    n_sequences: int

    def steps(self, micro_batch: int, grad_accum: int, seed: int, start_step: int,
              steps: int, rank: int = 0, world: int = 1
              ) -> Iterator[tuple[int, list[PackedBatch]]]:
        settings = TrainSettings(micro_batch=micro_batch, grad_accum=grad_accum, seed=seed,
                                 steps=steps)
        for step, micro in micro_batches(self.n_sequences, settings, start_step, rank, world):
            yield step, [self.load(idx) for idx in micro]


def nll_by_position(nll: torch.Tensor, valid: torch.Tensor, spans,
                    buckets: Sequence[int] = POSITION_BUCKETS
                    ) -> list[tuple[int, int, float, int]]:
    """(lo, hi, NLL sum, tokens) of the counted tokens whose position inside their unit is in
    [lo, hi): how far back a token's context reaches. Empty buckets are left out."""
    pos = unit_positions(spans, nll.shape[1])
    out = []
    for lo, hi in zip(buckets[:-1], buckets[1:], strict=True):
        sel = valid & (pos >= lo) & (pos < hi)
        if sel.any():
            out.append((lo, hi, float(nll[sel].sum()), int(sel.sum())))
    return out


def batch_scores(settings: TrainSettings, model, batch: PackedBatch, nll: torch.Tensor,
                 valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores s [B, T], eligible [B, T] bool) for one micro-batch, no gradient.

    s_i = log p'(n) - log p(N) (through the score variant) on every token with a usable
    score, 0 elsewhere. Eligible, frozen: every counted token the scorer predicted, its first
    window included (the scorer and the model are different models, so s_i is not 0 there);
    unfrozen: the tokens past their unit's first n, since on the first n the short and the
    long context are the same and s_i = 0 by definition.
    """
    if settings.frozen:
        if batch.logp_short is None:
            raise ValueError("frozen token weighting needs the token_weights asset's "
                             "short-context log-probs for every sequence")
        logp_short = batch.logp_short.to(nll.device)
        eligible = valid & torch.isfinite(logp_short)
    else:
        overlap = settings.overlap if settings.overlap is not None else settings.n // 4
        with torch.no_grad():
            lp, fc = short_context_logprobs(model, batch.input_ids.cpu().numpy(), batch.spans,
                                            settings.n, overlap,
                                            block_size=settings.block_size)
        logp_short = torch.from_numpy(lp).to(nll.device)
        eligible = valid & ~torch.from_numpy(fc).to(nll.device) & torch.isfinite(logp_short)
    s = scores(torch.nan_to_num(logp_short), -nll.detach(), settings.variant, settings.shift_k)
    return torch.where(eligible, s, torch.zeros_like(s)), eligible


def batch_weights(settings: TrainSettings, model, batch: PackedBatch, nll: torch.Tensor,
                  valid: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(token weights, eligible) for one micro-batch, no gradient: dense weights give the
    tokens without a usable score s = 0; sparse never keeps them and breaks ties among the
    eligible ones by a draw from ``seed`` (models.sparse_selection), never by position."""
    if settings.mode == "uniform":
        return valid.float(), valid
    s, eligible = batch_scores(settings, model, batch, nll, valid)
    if settings.mode == "sparse":
        return sparse_weights(s, eligible, valid, settings.sparse_kappa, seed), eligible
    return token_weights(s, valid, settings.mode, settings.lam), eligible


def scorable_fractions(spans: Sequence[Sequence[tuple[int, int]]], settings: TrainSettings,
                       logp_short: np.ndarray | None = None) -> np.ndarray:
    """Per sequence, the share of counted tokens with a usable score (the ones sparse
    weighting may keep): frozen, those with a finite frozen log-prob; unfrozen, those past
    their unit's first n tokens. Known from the data before any step runs."""
    out = np.zeros(len(spans))
    for i, units in enumerate(spans):
        counted = sum(max(e - a - 1, 0) for a, e in units)
        if settings.frozen:
            if logp_short is None:
                raise ValueError("frozen scorable fractions need the frozen log-probs")
            ok = sum(int(np.isfinite(logp_short[i, a + 1:e]).sum()) for a, e in units)
        else:
            ok = sum(max(e - a - settings.n, 0) for a, e in units)
        out[i] = ok / max(counted, 1)
    return out


def rank_world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) without torch.distributed."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


INIT_FILE_ENV = "ELONG_DIST_INIT_FILE"  # a rendezvous file for processes of one machine


def init_single_process() -> None:
    """torch.distributed for this process: as a launcher set it up (RANK, WORLD_SIZE,
    LOCAL_RANK, MASTER_ADDR/PORT, as models.distributed and DeepSpeed's launcher do; with
    ``$ELONG_DIST_INIT_FILE`` the processes meet through that file, not a TCP port another
    program may take first), else as the only process, on a free port; NCCL with one GPU per
    local rank, else gloo."""
    import deepspeed

    if "MASTER_PORT" not in os.environ:  # a free port: two local runs must not collide
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            os.environ["MASTER_PORT"] = str(sock.getsockname()[1])
    for key, value in (("MASTER_ADDR", "127.0.0.1"), ("RANK", "0"), ("WORLD_SIZE", "1"),
                       ("LOCAL_RANK", "0")):
        os.environ.setdefault(key, value)
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        init_file = os.environ.get(INIT_FILE_ENV)
        if init_file:
            deepspeed.init_distributed(dist_backend=backend, verbose=False,
                                       init_method=f"file://{init_file}",
                                       rank=int(os.environ["RANK"]),
                                       world_size=int(os.environ["WORLD_SIZE"]))
        else:
            deepspeed.init_distributed(dist_backend=backend, verbose=False)


def deepspeed_config(settings: TrainSettings) -> dict:
    config = {
        "train_micro_batch_size_per_gpu": settings.micro_batch,
        "gradient_accumulation_steps": settings.grad_accum,
        "gradient_clipping": settings.max_grad_norm,
        "zero_optimization": {"stage": settings.zero_stage},
        "zero_allow_untested_optimizer": True,
        "bf16": {"enabled": settings.bf16},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if settings.warmup_steps > 0:  # then constant, as in the paper's short runs
        config["scheduler"] = {"type": "WarmupLR", "params": {
            "warmup_min_lr": 0.0, "warmup_max_lr": settings.lr,
            "warmup_num_steps": settings.warmup_steps, "warmup_type": "linear"}}
    return config


def build_engine(model, settings: TrainSettings):
    """The DeepSpeed engine around ``model`` (blockwise head, RoPE base, AdamW)."""
    import deepspeed

    init_single_process()
    torch.manual_seed(settings.seed)
    use_blockwise_head(model, settings.block_size)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    use_attention(model, resolve_attention(settings.attention, device,
                                           torch.bfloat16 if settings.bf16 else torch.float32))
    if settings.rope_theta:
        set_rope_theta(model, settings.rope_theta)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, betas=(0.9, 0.95),
                                  eps=1e-8, weight_decay=settings.weight_decay)
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer,
                                           config=deepspeed_config(settings))
    return engine


def set_checkpointing(model, on: bool) -> None:
    """Gradient checkpointing of the decoder layers on or off (non-reentrant: ZeRO-3 and
    keyword arguments pass through)."""
    if on == bool(getattr(model, "is_gradient_checkpointing", False)):
        return
    if on:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_disable()


def micro_step(engine, settings: TrainSettings, batch: PackedBatch, step_tokens: int,
               seed: int = 0
               ) -> tuple[float, float, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward and backward of one micro-batch; returns its loss sums, weights, NLL, the
    counted tokens and the eligible ones (``seed``: the sparse tie-breaking draw)."""
    module = engine.module
    device = engine.device
    # what engine.forward does first, and this path (the body called directly) must too:
    # ZeRO counts micro-batches there, and without it ZeRO-3 overwrites the accumulated
    # gradient with each micro-batch's instead of adding to it
    if hasattr(engine.optimizer, "clear_backward_seen_flag"):
        engine.optimizer.clear_backward_seen_flag()
    ids = batch.input_ids.to(device)
    set_checkpointing(module, settings.checkpointing(ids.shape[1]))
    hidden = unit_hidden(module.model, ids, batch.spans, dense=settings.attention == DENSE)
    nll = token_nll(hidden, module.get_output_embeddings(), ids)
    valid = ignore_mask(batch.input_ids, batch.spans).to(device)
    w, eligible = batch_weights(settings, module, batch, nll, valid, seed)
    weighted = (w * nll).sum()
    engine.backward(weighted / step_tokens, scale_wrt_gas=False)
    unweighted = (nll * valid).sum()
    return (float(weighted.detach()), float(unweighted.detach()), w.detach(), nll.detach(),
            valid, eligible)


def _reduce(values: list[float], device, op: str = "sum") -> list[float]:
    """``values`` summed (or maxed) over the ranks; themselves in one process."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return t.tolist()


def train(engine, settings: TrainSettings, data: BatchSource,
          checkpoint_dir: str | None = None, start_step: int = 0,
          on_step: Callable[[StepMetrics], None] | None = None,
          on_checkpoint: Callable[[str], None] | None = None) -> list[StepMetrics]:
    """Run steps ``start_step`` .. ``settings.steps - 1`` on this rank's share of each step.

    The step's counted tokens are summed over all ranks before the first backward, and each
    rank backpropagates sum(w * nll) * world / (that count): DeepSpeed averages gradients
    over the ranks, so the update is the gradient of the weighted mean over the global
    batch, the same as one process running the global batch as accumulation steps. The
    metrics are reduced over the ranks too; ``on_step`` runs on rank 0 only. Every rank
    writes its part of a checkpoint (ZeRO shards); all wait until the checkpoint is whole,
    then rank 0 passes its tag to ``on_checkpoint`` (to upload it: never one half written).
    """
    rank, world = rank_world()
    history = []
    buckets = list(zip(POSITION_BUCKETS[:-1], POSITION_BUCKETS[1:], strict=True))
    for step, batches in data.steps(settings.micro_batch, settings.grad_accum, settings.seed,
                                    start_step, settings.steps, rank, world):
        t0 = time.perf_counter()
        local = sum(int(ignore_mask(b.input_ids, b.spans).sum()) for b in batches)
        step_tokens = int(_reduce([float(local)], engine.device)[0])
        sums = np.zeros(8 + 2 * len(buckets))  # loss w, loss u, weights n/sum/sq/nonzero,
        w_max = 0.0  # scorable sum / sequences, then per bucket NLL sum and tokens
        for k, b in enumerate(batches):
            lw, lu, w, nll, valid, eligible = micro_step(
                engine, settings, b, max(step_tokens, 1) / world,
                draw_seed(settings.seed, step, rank * settings.grad_accum + k))
            engine.step()
            kept = w[valid].double()
            frac = scorable_fraction(eligible, valid)
            sums[:8] += [lw, lu, kept.numel(), float(kept.sum()), float((kept ** 2).sum()),
                         float((kept > 0).sum()), float(frac.sum()), frac.numel()]
            w_max = max(w_max, float(kept.max()) if kept.numel() else 0.0)
            for lo, hi, s, c in nll_by_position(nll.cpu(), valid.cpu(), b.spans):
                j = buckets.index((lo, hi))
                sums[8 + 2 * j] += s
                sums[9 + 2 * j] += c
        sums = np.asarray(_reduce(sums.tolist(), engine.device))
        w_max = _reduce([w_max], engine.device, "max")[0]
        n_w, w_sum, w_sq = sums[2], sums[3], sums[4]
        tokens = max(step_tokens, 1)
        m = StepMetrics(step=step, loss_weighted=sums[0] / tokens,
                        loss_unweighted=sums[1] / tokens, tokens=step_tokens,
                        weight_mean=w_sum / max(n_w, 1),
                        weight_std=float(np.sqrt(max(w_sq - w_sum ** 2 / max(n_w, 1), 0.0)
                                                 / max(n_w - 1, 1))),
                        weight_max=w_max, weight_nonzero=sums[5] / max(n_w, 1),
                        lr=float(engine.get_lr()[0]), seconds=time.perf_counter() - t0,
                        loss_by_position={f"{lo}-{hi}": sums[8 + 2 * j] / sums[9 + 2 * j]
                                          for j, (lo, hi) in enumerate(buckets)
                                          if sums[9 + 2 * j]},
                        scorable_fraction=sums[6] / max(sums[7], 1))
        history.append(m)
        if on_step and rank == 0:
            on_step(m)
        done = step + 1
        if checkpoint_dir and (done == settings.steps or (
                settings.checkpoint_every and done % settings.checkpoint_every == 0)):
            tag = f"step-{done}"
            engine.save_checkpoint(checkpoint_dir, tag=tag,
                                   client_state={"step": done, "world": world,
                                                 "settings": asdict(settings)})
            if world > 1:
                torch.distributed.barrier()
            if rank == 0:
                (Path(checkpoint_dir) / tag / RUN_FILE).write_text(
                    json.dumps({"step": done, "world": world}))
                if on_checkpoint:
                    on_checkpoint(tag)
    return history


RUN_FILE = "elong_run.json"  # beside each checkpoint tag's shards: step and processes


def resume(engine, checkpoint_dir: str) -> int:
    """Load the latest checkpoint under ``checkpoint_dir``; returns the step to start from.

    Refused (before anything loads) when it was written by another number of processes: the
    global batch, and so every later step's data, would differ from the interrupted run's;
    with ``processes`` None that happens when a pod with another GPU count picks the run up.
    """
    latest = Path(checkpoint_dir) / "latest"
    if not latest.exists():
        return 0
    run_file = Path(checkpoint_dir) / latest.read_text().strip() / RUN_FILE
    if run_file.exists():
        _same_world(int(json.loads(run_file.read_text())["world"]), checkpoint_dir)
    path, client = engine.load_checkpoint(checkpoint_dir)
    if path is None:
        return 0
    _same_world(int(client.get("world", 1)), checkpoint_dir)  # a checkpoint without the file
    return int(client["step"])


def _same_world(written: int, checkpoint_dir: str) -> None:
    """Refuse a checkpoint written by another number of processes: a step's data is a slice
    of the global batch, so the resumed steps would see other data."""
    world = rank_world()[1]
    if written != world:
        raise ValueError(f"{checkpoint_dir} was written by {written} training processes, "
                         f"this run has {world}: its steps would see other data than the "
                         f"interrupted run's; set training.processes to {written}")


def save_model(engine, folder: str | Path) -> None:
    """The trained weights as a Hugging Face folder (``save_pretrained``), written by rank 0;
    under ZeRO-3 every rank takes part in gathering the parameters first."""
    import deepspeed

    module = engine.module
    rank = rank_world()[0]
    if engine.zero_optimization_stage() == 3:
        with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None):
            state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()} \
                if rank == 0 else None
    else:
        state = None
    if rank == 0:
        module.save_pretrained(str(folder), state_dict=state)
