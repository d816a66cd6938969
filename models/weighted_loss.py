"""The token-weighted language-model loss, computed in blocks so that the full
[tokens x vocab] fp32 logits never exist, forward or backward.

Each block of positions goes through the LM head and an fp32 log-softmax inside
``torch.utils.checkpoint``: the forward keeps only the block's scalar contribution, and the
backward recomputes that block's logits when it needs them. Peak extra memory is one block
of logits instead of the whole sequence's. The loss is taken in fp32 even when the model
runs in bf16 (a bf16 log-softmax over 128K vocabularies loses the small probabilities that
the weights are meant to emphasise).

Convention: ``weights[b, t]`` weighs the label x_t predicted from x_<t (the same indexing as
the scoring kernel and models.token_weights); position 0 never counts.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint


def _block_terms(h: torch.Tensor, head: torch.nn.Module, targets: torch.Tensor,
                 w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logits = head(h).float()
    nll = torch.logsumexp(logits, dim=-1) - logits.gather(-1, targets[..., None]).squeeze(-1)
    return (w * nll).sum(), nll.detach()


def weighted_nll_sum(hidden: torch.Tensor, head: torch.nn.Module, input_ids: torch.Tensor,
                     weights: torch.Tensor, block_size: int = 1024
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """sum_t w_t * (-log p(x_t | x_<t)) over a batch, and the per-token NLL (detached).

    ``hidden`` is the model body's output [B, T, H] (before the LM head); the NLL tensor is
    [B, T] with NaN at position 0. Divide the sum by the number of counted tokens of the
    whole optimizer step (not of each micro-batch) to get correctly scaled gradients under
    accumulation.
    """
    weights = weights.detach().float()
    b, t, _ = hidden.shape
    nll = torch.full((b, t), float("nan"), dtype=torch.float32, device=hidden.device)
    total = hidden.new_zeros((), dtype=torch.float32)
    for lo in range(0, t - 1, block_size):
        hi = min(lo + block_size, t - 1)
        h = hidden[:, lo:hi]  # predicts x_{lo+1} .. x_hi
        targets = input_ids[:, lo + 1:hi + 1]
        w = weights[:, lo + 1:hi + 1]
        if torch.is_grad_enabled() and h.requires_grad:
            part, block_nll = checkpoint(_block_terms, h, head, targets, w, use_reentrant=False)
        else:
            part, block_nll = _block_terms(h, head, targets, w)
        total = total + part
        nll[:, lo + 1:hi + 1] = block_nll
    return total, nll
