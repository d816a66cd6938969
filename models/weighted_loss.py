"""The token-weighted language-model loss, computed in blocks so that the full
[tokens x vocab] fp32 logits never exist, forward or backward.

``blockwise_nll`` is an autograd function: its forward runs the LM head block by block and
keeps only each token's log-sum-exp; its backward recomputes one block of logits at a time
to form (softmax - onehot) scaled by the incoming gradient. Because the per-token NLL comes
out before any weight is applied, the weights can depend on it (dense and sparse weighting
normalise over the whole sequence, and unfrozen weighting compares it with a short-context
score) at no extra LM-head pass: a weighted step costs what a uniform one does. Logits and
reductions are fp32 even when the model runs in bf16 (a bf16 log-softmax over a large
vocabulary loses exactly the small probabilities the weights are meant to emphasise).

Convention: ``weights[b, t]`` weighs the label x_t predicted from x_<t (the indexing of the
scoring kernel and models.token_weights); position 0 never counts.
"""

from __future__ import annotations

import torch


class _BlockwiseNLL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                block_size: int) -> torch.Tensor:
        rows = hidden.reshape(-1, hidden.shape[-1])
        flat_t = targets.reshape(-1)
        w32 = weight.float()
        lse = torch.empty(rows.shape[0], dtype=torch.float32, device=rows.device)
        nll = torch.empty_like(lse)
        for lo in range(0, rows.shape[0], block_size):
            logits = rows[lo:lo + block_size].float() @ w32.T
            lse[lo:lo + block_size] = torch.logsumexp(logits, dim=-1)
            gold = logits.gather(-1, flat_t[lo:lo + block_size, None]).squeeze(-1)
            nll[lo:lo + block_size] = lse[lo:lo + block_size] - gold
        ctx.save_for_backward(hidden, weight, targets, lse)
        ctx.block_size = block_size
        return nll.reshape(targets.shape)

    @staticmethod
    def backward(ctx, grad_nll: torch.Tensor):
        hidden, weight, targets, lse = ctx.saved_tensors
        rows = hidden.reshape(-1, hidden.shape[-1])
        flat_t = targets.reshape(-1)
        g_out = grad_nll.reshape(-1).float()
        w32 = weight.float()
        grad_rows = torch.zeros(rows.shape, dtype=torch.float32, device=rows.device)
        grad_w = torch.zeros(w32.shape, dtype=torch.float32, device=w32.device)
        for lo in range(0, rows.shape[0], ctx.block_size):
            h = rows[lo:lo + ctx.block_size].float()
            p = torch.exp(h @ w32.T - lse[lo:lo + ctx.block_size, None])  # softmax
            p[torch.arange(h.shape[0], device=h.device), flat_t[lo:lo + ctx.block_size]] -= 1
            p *= g_out[lo:lo + ctx.block_size, None]
            grad_rows[lo:lo + ctx.block_size] = p @ w32
            grad_w += p.T @ h
        grad_hidden = grad_rows.reshape(hidden.shape).to(hidden.dtype)
        return grad_hidden, grad_w.to(weight.dtype), None, None


def blockwise_nll(hidden: torch.Tensor, head_weight: torch.Tensor, targets: torch.Tensor,
                  block_size: int = 1024) -> torch.Tensor:
    """-log softmax(hidden @ W^T)[target] per row, differentiable, one block of logits at a
    time (``hidden`` [..., H], ``targets`` [...])."""
    return _BlockwiseNLL.apply(hidden, head_weight, targets, block_size)


class BlockwiseLMHead(torch.nn.Linear):
    """The model's LM head, also able to return per-token NLL without full logits.

    Replacing the head's class keeps its weight (and any tying to the embeddings), and
    keeps the loss inside the head module's own forward, which is where DeepSpeed ZeRO-3
    gathers a partitioned weight.
    """

    block_size = 1024

    def forward(self, hidden: torch.Tensor, targets: torch.Tensor | None = None
                ) -> torch.Tensor:
        if targets is None:
            return super().forward(hidden)
        return blockwise_nll(hidden, self.weight, targets, self.block_size)


def token_nll(hidden: torch.Tensor, head: torch.nn.Module, input_ids: torch.Tensor,
              block_size: int = 1024) -> torch.Tensor:
    """Per-token NLL [B, T] (differentiable) with NaN-free zeros at position 0.

    Position t holds -log p(x_t | x_<t), computed from the hidden state at t - 1. A
    BlockwiseLMHead computes it in its own forward (its block size); any other bias-free
    head through ``blockwise_nll`` on its weight.
    """
    targets = input_ids[:, 1:]
    if isinstance(head, BlockwiseLMHead):
        nll = head(hidden[:, :-1], targets)
    elif getattr(head, "bias", None) is not None:
        raise ValueError("an LM head with a bias is not supported by the blockwise loss")
    else:
        nll = blockwise_nll(hidden[:, :-1], head.weight, targets, block_size)
    return torch.nn.functional.pad(nll, (1, 0))


def weighted_nll_sum(hidden: torch.Tensor, head: torch.nn.Module, input_ids: torch.Tensor,
                     weights: torch.Tensor, block_size: int = 1024
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """sum_t w_t * (-log p(x_t | x_<t)) over a batch, and the per-token NLL (detached, NaN
    at position 0).

    Divide the sum by the number of counted tokens of the whole optimizer step (not of each
    micro-batch) to get correctly scaled gradients under accumulation.
    """
    nll = token_nll(hidden, head, input_ids, block_size)
    total = (weights.detach().float() * nll).sum()
    out = nll.detach().clone()
    out[:, 0] = float("nan")
    return total, out
