"""The entropy stage: per-token entropy and gold NLL of every root document, in batches."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from models.scoring import ScoringConfig, score_sequences

DOCS_PER_STEP = 32  # documents scored between progress reports


@dataclass
class Profiles:
    """Column arrays of the entropy_profiles table (model and window added by the caller)."""

    entropy: list[np.ndarray]  # float16 per document; index t predicts token t, NaN at 0
    nll: list[np.ndarray]
    mean: list[float]  # over the scored tokens (token 0 has no prediction), in float64
    std: list[float]
    tokens: int

    def all_entropies(self) -> np.ndarray:
        parts = [e[1:].astype(np.float32) for e in self.entropy]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def entropy_profiles(model, token_lists: Sequence[np.ndarray], cfg: ScoringConfig,
                     progress: Callable[[str], None] = lambda _: None) -> Profiles:
    """Score ``token_lists`` with ``model`` (exact entropy kernel), reporting progress.

    The mean and std are computed from the fp32 entropies before the fp16 copy is kept, so
    the anchor rule's threshold does not move with storage precision.
    """
    out = Profiles([], [], [], [], 0)
    total = sum(len(x) for x in token_lists)
    start = time.perf_counter()
    for lo in range(0, len(token_lists), DOCS_PER_STEP):
        part = token_lists[lo:lo + DOCS_PER_STEP]
        for scores in score_sequences(model, part, cfg):
            h = scores.entropy[np.isfinite(scores.entropy)].astype(np.float64)
            out.entropy.append(scores.entropy.astype(np.float16))
            out.nll.append(scores.nll.astype(np.float16))
            out.mean.append(float(h.mean()) if h.size else 0.0)
            out.std.append(float(h.std()) if h.size else 0.0)
        out.tokens += sum(len(x) for x in part)
        rate = out.tokens / max(time.perf_counter() - start, 1e-9)
        progress(f"scored {min(lo + DOCS_PER_STEP, len(token_lists))}/{len(token_lists)} "
                 f"docs, {out.tokens}/{total} tokens, {rate:,.0f} tokens/s")
    return out
