"""Verification decisions: relative information gain and the keep rule (pure numpy)."""

from __future__ import annotations

import numpy as np


def relative_gain(h_before: np.ndarray, h_after: np.ndarray) -> np.ndarray:
    """dI = (H - H') / H; NaN where H is 0 (no uncertainty to explain) or not finite."""
    h = np.asarray(h_before, np.float64)
    h2 = np.asarray(h_after, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        di = (h - h2) / h
    di[~np.isfinite(di) | (h <= 0)] = np.nan
    return di.astype(np.float32)


def verified(di: np.ndarray, epsilon: float, nll_before: np.ndarray | None = None,
             nll_after: np.ndarray | None = None, correctness_aware: bool = False
             ) -> np.ndarray:
    """dI > epsilon; with ``correctness_aware`` the gold token's NLL must also fall.

    Entropy can fall while the model becomes confidently wrong; the correctness-aware rule
    rejects those chunks.
    """
    keep = np.nan_to_num(np.asarray(di, np.float64), nan=-np.inf) > epsilon
    if correctness_aware:
        if nll_before is None or nll_after is None:
            raise ValueError("correctness_aware needs nll_before and nll_after")
        keep &= np.asarray(nll_after) < np.asarray(nll_before)
    return keep
