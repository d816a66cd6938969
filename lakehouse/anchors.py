"""High-entropy anchors (EntropyLong step 1) and their retrieval queries (step 2).

Pure numpy over one document's entropy profile. Position 0 carries no prediction (NaN) and is
never an anchor; statistics ignore NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

QueryMode = Literal["symmetric", "prefix"]


@dataclass(frozen=True)
class Threshold:
    mean: float
    std: float
    tau: float


def adaptive_threshold(entropy: np.ndarray, alpha: float) -> Threshold:
    """tau = mean(H) + alpha * std(H) over the scored positions (population std)."""
    scored = entropy[np.isfinite(entropy)].astype(np.float64)
    if scored.size == 0:
        return Threshold(float("nan"), float("nan"), float("nan"))
    mean, std = float(scored.mean()), float(scored.std())
    return Threshold(mean, std, mean + alpha * std)


def select_anchors(entropy: np.ndarray, tau: float, max_anchors: int | None = None
                   ) -> np.ndarray:
    """Positions with H > tau, ascending; with a cap, the ``max_anchors`` highest-entropy ones.

    Ties at the cap are broken by position (earlier first), so the choice is deterministic.
    """
    if not np.isfinite(tau):
        return np.zeros(0, dtype=np.int64)
    with np.errstate(invalid="ignore"):
        positions = np.flatnonzero(np.nan_to_num(entropy, nan=-np.inf) > tau)
    if max_anchors is not None and positions.size > max_anchors:
        order = np.lexsort((positions, -entropy[positions]))  # by entropy desc, then position
        positions = np.sort(positions[order[:max_anchors]])
    return positions.astype(np.int64)


def query_span(position: int, n_tokens: int, w: int, mode: QueryMode) -> tuple[int, int]:
    """Token span of the query for an anchor: x[t-w : t+w] (symmetric) or x[t-2w : t] (prefix).

    The symmetric window contains the anchor token itself; the prefix window does not, so it
    cannot retrieve a chunk merely because it repeats the token to be predicted.
    """
    if mode == "symmetric":
        return max(0, position - w), min(n_tokens, position + w)
    if mode == "prefix":
        return max(0, position - 2 * w), position
    raise ValueError(f"query mode must be 'symmetric' or 'prefix', got {mode!r}")


def span_text(text: str, char_start: np.ndarray, char_end: np.ndarray, lo: int, hi: int) -> str:
    """The document text covered by tokens [lo, hi)."""
    if hi <= lo:
        return ""
    return text[int(char_start[lo]):int(char_end[hi - 1])].strip()
