"""Sparse token weights that never fall back to position (SPEC B.1-2).

Sparse weighting keeps the top kappa fraction of a sequence's tokens at weight 1/kappa. Two
things decide which tokens can be kept. A token without a usable score (unfrozen: inside its
unit's first n tokens, where short and long context are the same; a NaN short-context
log-prob) has no long-range information to rank it by, so it is not eligible at all, rather
than competing with score 0. Among eligible tokens of equal score, a seeded random draw
decides: a stable sort would keep the earliest positions, which turns "weight the
long-range tokens" into "weight the start of the sequence" wherever scores tie.

The number kept is round(kappa * counted tokens), at least 1 where anything is eligible and
never more than the eligible tokens: a sequence with few scorable tokens keeps all of them
and trains on nothing else. ``scorable_fraction`` is the share of counted tokens that are
eligible, the figure to watch when units are not much longer than n.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def draw_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed for one draw, a function of the run's seed and e.g. (step, micro-batch):
    a resumed run repeats the uninterrupted run's choices."""
    return int(np.random.SeedSequence((seed, *keys)).generate_state(2, np.uint64)[0] >> 1)


def sparse_weights(s: torch.Tensor, eligible: torch.Tensor, valid: torch.Tensor,
                   kappa: float, seed: int) -> torch.Tensor:
    """[B, T] weights: per sequence the round(kappa * valid tokens) eligible tokens of
    highest score at 1/kappa (ties in a random order drawn from ``seed``), the rest 0."""
    if not 0.0 < kappa <= 1.0:
        raise ValueError(f"kappa must be in (0, 1], got {kappa}")
    eligible = eligible.bool() & valid.bool()
    gen = torch.Generator().manual_seed(seed)
    perm = torch.argsort(torch.rand(s.shape, generator=gen), dim=-1).to(s.device)
    key = torch.where(eligible, s.detach().float(), torch.full((), -math.inf, device=s.device))
    order = perm.gather(-1, torch.sort(key.gather(-1, perm), dim=-1, descending=True,
                                       stable=True).indices)
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(s.shape[-1], device=s.device).expand_as(order))
    n_valid = valid.bool().sum(dim=-1)
    n_eligible = eligible.sum(dim=-1)
    keep = torch.clamp(torch.round(kappa * n_valid.float()).long(), min=1)
    keep = torch.minimum(keep, n_eligible)
    chosen = (rank < keep[..., None]) & eligible
    return chosen.float() / kappa


def scorable_fraction(eligible: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """[B]: eligible share of each sequence's counted tokens (0 where none count)."""
    n = valid.bool().sum(dim=-1)
    return (eligible.bool() & valid.bool()).sum(dim=-1).float() / n.clamp_min(1)
