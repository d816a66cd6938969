"""Token weights for long-context training (Helm et al., "Token Weighting for Long-Range
Language Modeling"), as pure functions over tensors.

Scoring compares a short-context model theta' (context n) with the long-context model theta
(context N) on the same token: w~_i = log p'(n)(y_i) - log p(N)(y_i) (eq. 5-6), which is
minus the conditional PMI between y_i and the context farther than n tokens back. Variants:

    abs    |w~|                      (the paper's choice)
    ppmi   max(PMI, 0)     = max(-w~, 0)
    npmi   max(-PMI, 0)    = max(w~, 0)
    sppmi  max(PMI - ln k, 0),  snpmi  max(-PMI - ln k, 0)   (shifted, k >= 2)

Postprocessing turns scores into weights over the tokens that count (``valid``): uniform
(w = 1), dense (normalise to sum to the number of valid tokens, eq. 7, then interpolate with
uniform: w = lambda + (1 - lambda) * norm, eq. 8) and sparse (the top kappa fraction per
sequence at 1/kappa, the rest 0; ties broken by position, earlier first, so the choice is
deterministic). Ignored tokens (padding, the first label of each unit, which has no context)
get weight 0 and are not counted. Weights never carry gradient.

Conventions: tensors are [batch, seq]; ``logp_*[b, t]`` is log p(x_t | x_<t) in fp32, so
position 0 of a sequence carries no prediction and must be masked by the caller.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from models.sparse_selection import sparse_weights

Variant = Literal["abs", "ppmi", "npmi", "sppmi", "snpmi"]
Postprocess = Literal["uniform", "dense", "sparse"]
VARIANTS: tuple[str, ...] = ("abs", "ppmi", "npmi", "sppmi", "snpmi")


def scores(logp_short: torch.Tensor, logp_long: torch.Tensor, variant: Variant = "abs",
           shift_k: float = 2.0) -> torch.Tensor:
    """Per-token scores from short- and long-context log-probs (detached, fp32)."""
    w = (logp_short.detach().float() - logp_long.detach().float())  # = -PMI
    if variant == "abs":
        return w.abs()
    if variant in ("sppmi", "snpmi") and not shift_k >= 2:
        raise ValueError(f"shifted variants need k >= 2, got {shift_k}")
    shift = math.log(shift_k) if variant in ("sppmi", "snpmi") else 0.0
    if variant in ("ppmi", "sppmi"):
        return torch.clamp(-w - shift, min=0.0)
    if variant in ("npmi", "snpmi"):
        return torch.clamp(w - shift, min=0.0)
    raise ValueError(f"score variant must be one of {VARIANTS}, got {variant!r}")


def dense_weights(s: torch.Tensor, valid: torch.Tensor, lam: float = 0.75) -> torch.Tensor:
    """w = lam + (1 - lam) * N * s / sum(s) over the valid tokens of each sequence (eq. 7-8).

    A sequence whose scores are all zero has nothing to prefer and gets uniform weights.
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lambda must be in [0, 1], got {lam}")
    valid = valid.bool()
    s = torch.where(valid, s.detach().float(), torch.zeros((), dtype=torch.float32))
    n = valid.sum(dim=-1, keepdim=True).float()
    total = s.sum(dim=-1, keepdim=True)
    norm = torch.where(total > 0, n * s / total.clamp_min(1e-30), torch.ones_like(s))
    w = lam + (1.0 - lam) * norm
    return torch.where(valid, w, torch.zeros_like(w))


def token_weights(s: torch.Tensor, valid: torch.Tensor, mode: Postprocess,
                  lam: float = 0.75, kappa: float = 0.4, seed: int = 0) -> torch.Tensor:
    """Weights for one of the three postprocessing modes (uniform ignores the scores).
    Sparse keeps the top kappa of the valid tokens, ties broken by a draw from ``seed``
    (models.sparse_selection; the trainer passes only the tokens with a usable score)."""
    if mode == "uniform":
        return valid.float()
    if mode == "dense":
        return dense_weights(s, valid, lam)
    if mode == "sparse":
        return sparse_weights(s, valid, valid, kappa, seed)
    raise ValueError(f"weighting must be uniform, dense or sparse, got {mode!r}")


def ignore_mask(input_ids: torch.Tensor, unit_spans: list[list[tuple[int, int]]]) -> torch.Tensor:
    """True where a label counts: inside a unit, and not the unit's first token.

    ``unit_spans[b]`` are the [start, end) unit spans of sequence b (ProLong `indices`);
    positions outside every span are padding. The first token of a unit is predicted from
    nothing (attention stops at the unit boundary), so its label is ignored too.
    """
    valid = torch.zeros(input_ids.shape, dtype=torch.bool)
    for b, spans in enumerate(unit_spans):
        for start, end in spans:
            if end - start > 1:
                valid[b, start + 1:end] = True
    return valid
