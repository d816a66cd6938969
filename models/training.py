"""Continued pretraining on packed sequences with the token-weighted loss, on DeepSpeed.

One optimizer step = ``grad_accum`` micro-batches of ``micro_batch`` packed sequences. Per
micro-batch: the model body runs once with attention kept inside units (a block-diagonal
causal mask built from the ProLong `indices`, positions restarting at each unit), the
per-token NLL comes out of the blockwise LM-head loss (models.weighted_loss), the weights
are computed from it and the short-context log-probs (frozen: precomputed by the
`token_weights` asset; unfrozen: the model itself at context n, no gradient), and
sum(w * nll) / (tokens counted in the whole step) is backpropagated. DeepSpeed's own
division by the accumulation steps is switched off, so the gradient is that of the step's
weighted mean, however the step is split into micro-batches.

Everything a resumed run needs (the step counter; the data order is a function of the seed
and the step) goes into the DeepSpeed checkpoint's client state, so a run killed after a
checkpoint continues with the loss curve of an uninterrupted one.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from models.settings import TrainSettings
from models.short_context import short_context_logprobs
from models.token_weights import ignore_mask, scores, token_weights
from models.weighted_loss import BlockwiseLMHead, token_nll

POSITION_BUCKETS = (0, 512, 2048, 8192, 32768, 131072)


@dataclass
class PackedBatch:
    input_ids: torch.Tensor  # [B, T]
    spans: list[list[tuple[int, int]]]
    logp_short: torch.Tensor | None = None  # [B, T] frozen short-context log-probs
    full_context: torch.Tensor | None = None  # [B, T] bool: short context == long context


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


def unit_positions(spans: Sequence[Sequence[tuple[int, int]]], length: int) -> torch.Tensor:
    """Position ids [B, T] restarting at 0 in each unit (0 on padding)."""
    pos = torch.zeros(len(spans), length, dtype=torch.long)
    for i, units in enumerate(spans):
        for a, e in units:
            pos[i, a:e] = torch.arange(e - a)
    return pos


def unit_attention(spans: Sequence[Sequence[tuple[int, int]]], length: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask [B, 1, T, T] bool, position ids [B, T]): causal inside each unit, nothing
    across units; positions restart at 0 in each unit; padding attends to itself only."""
    mask = torch.zeros(len(spans), 1, length, length, dtype=torch.bool)
    diag = torch.arange(length)
    mask[:, 0, diag, diag] = True  # padding rows stay finite
    for i, units in enumerate(spans):
        for a, e in units:
            mask[i, 0, a:e, a:e] = torch.tril(torch.ones(e - a, e - a, dtype=torch.bool))
    return mask, unit_positions(spans, length)


def micro_batches(n_sequences: int, settings: TrainSettings, start_step: int
                  ) -> Iterator[tuple[int, list[list[int]]]]:
    """(step, [sequence indices per micro-batch]) from ``start_step`` on.

    Epochs are seeded permutations, so the order at any step is known without replaying the
    earlier ones: a resumed run sees exactly the data the uninterrupted run would have.
    """
    per_step = settings.micro_batch * settings.grad_accum
    order, order_epoch = None, -1
    for step in range(start_step, settings.steps):
        first = step * per_step
        idx = []
        for k in range(first, first + per_step):
            epoch, offset = divmod(k, n_sequences)
            if epoch != order_epoch:  # one permutation per epoch, not per sequence drawn
                order = np.random.default_rng((settings.seed, epoch)).permutation(n_sequences)
                order_epoch = epoch
            idx.append(int(order[offset]))
        yield step, [idx[i:i + settings.micro_batch]
                     for i in range(0, per_step, settings.micro_batch)]


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


def batch_weights(settings: TrainSettings, model, batch: PackedBatch, nll: torch.Tensor,
                  valid: torch.Tensor) -> torch.Tensor:
    """Token weights for one micro-batch (no gradient)."""
    if settings.mode == "uniform":
        return valid.float()
    if settings.frozen:
        if batch.logp_short is None:
            raise ValueError("frozen token weighting needs the token_weights asset's "
                             "short-context log-probs for every sequence")
        logp_short, full = batch.logp_short, batch.full_context
    else:
        overlap = settings.overlap if settings.overlap is not None else settings.n // 4
        with torch.no_grad():
            lp, fc = short_context_logprobs(model, batch.input_ids.cpu().numpy(), batch.spans,
                                            settings.n, overlap,
                                            block_size=settings.block_size)
        logp_short, full = torch.from_numpy(lp), torch.from_numpy(fc)
    logp_short = logp_short.to(nll.device)
    s = scores(torch.nan_to_num(logp_short), -nll.detach(), settings.variant, settings.shift_k)
    s = torch.where(full.to(nll.device) | ~valid, torch.zeros_like(s), s)
    return token_weights(s, valid, settings.mode, settings.lam, settings.kappa)


def init_single_process() -> None:
    """torch.distributed with gloo for one local process (CPU), unless a launcher set it up."""
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
    if settings.rope_theta:
        set_rope_theta(model, settings.rope_theta)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, betas=(0.9, 0.95),
                                  eps=1e-8, weight_decay=settings.weight_decay)
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer,
                                           config=deepspeed_config(settings))
    return engine


def micro_step(engine, settings: TrainSettings, batch: PackedBatch, step_tokens: int
               ) -> tuple[float, float, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward and backward of one micro-batch; returns its loss sums, weights, NLL, mask."""
    module = engine.module
    device = engine.device
    ids = batch.input_ids.to(device)
    mask, pos = unit_attention(batch.spans, ids.shape[1])
    hidden = module.model(input_ids=ids, attention_mask=mask.to(device),
                          position_ids=pos.to(device)).last_hidden_state
    nll = token_nll(hidden, module.get_output_embeddings(), ids)
    valid = ignore_mask(batch.input_ids, batch.spans).to(device)
    w = batch_weights(settings, module, batch, nll, valid)
    weighted = (w * nll).sum()
    engine.backward(weighted / step_tokens, scale_wrt_gas=False)
    unweighted = (nll * valid).sum()
    return (float(weighted.detach()), float(unweighted.detach()), w.detach(), nll.detach(),
            valid)


def train(engine, settings: TrainSettings, load: Callable[[list[int]], PackedBatch],
          n_sequences: int, checkpoint_dir: str | None = None, start_step: int = 0,
          on_step: Callable[[StepMetrics], None] | None = None) -> list[StepMetrics]:
    """Run steps ``start_step`` .. ``settings.steps - 1``; ``load`` builds a micro-batch."""
    history = []
    for step, micro in micro_batches(n_sequences, settings, start_step):
        t0 = time.perf_counter()
        batches = [load(idx) for idx in micro]
        step_tokens = int(sum(int(ignore_mask(b.input_ids, b.spans).sum()) for b in batches))
        sums_w = sums_u = 0.0
        ws, nlls, valids, spans = [], [], [], []
        for b in batches:
            lw, lu, w, nll, valid = micro_step(engine, settings, b, max(step_tokens, 1))
            engine.step()
            sums_w += lw
            sums_u += lu
            ws.append(w[valid])
            nlls.append(nll.cpu())
            valids.append(valid.cpu())
            spans.extend(b.spans)
        weights = torch.cat(ws).float()
        buckets = {f"{lo}-{hi}": s / c for lo, hi, s, c in
                   nll_by_position(torch.cat(nlls), torch.cat(valids), spans)} \
            if len({n.shape[1] for n in nlls}) == 1 else {}
        m = StepMetrics(step=step, loss_weighted=sums_w / max(step_tokens, 1),
                        loss_unweighted=sums_u / max(step_tokens, 1), tokens=step_tokens,
                        weight_mean=float(weights.mean()), weight_std=float(weights.std()),
                        weight_max=float(weights.max()),
                        weight_nonzero=float((weights > 0).float().mean()),
                        lr=float(engine.get_lr()[0]), seconds=time.perf_counter() - t0,
                        loss_by_position=buckets)
        history.append(m)
        if on_step:
            on_step(m)
        done = step + 1
        if checkpoint_dir and (done == settings.steps or (
                settings.checkpoint_every and done % settings.checkpoint_every == 0)):
            engine.save_checkpoint(checkpoint_dir, tag=f"step-{done}",
                                   client_state={"step": done, "settings": asdict(settings)})
    return history


def resume(engine, checkpoint_dir: str) -> int:
    """Load the latest checkpoint under ``checkpoint_dir``; returns the step to start from."""
    if not (Path(checkpoint_dir) / "latest").exists():
        return 0
    path, client = engine.load_checkpoint(checkpoint_dir)
    if path is None:
        return 0
    return int(client["step"])
