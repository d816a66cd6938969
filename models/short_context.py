"""Short-context log-probs for token weighting: the scorer sees at most n tokens of a unit.

Both the frozen scorer (precomputed once per packed dataset) and the unfrozen one (the
model in training, cut to context n, no gradient) use this. Each unit of a packed sequence
is scored on its own, because attention never crosses a unit boundary: with windows of n
tokens and ``overlap`` (the paper: n/4, e.g. 8192 with stride 6144), every token is scored
once with at least ``overlap`` tokens of context. Tokens in a unit's first window see their
whole unit, exactly as the long-context model does: their short/long score is 0 by
definition, and ``full_context`` marks them so the caller can set it without relying on
two forwards agreeing to the last bit. Since their log-probs never enter a score, the first
window is not run at all unless asked for: a unit no longer than n costs nothing, and a
packed sequence of units a few times n costs a fraction of one forward instead of more than
one (the unfrozen step time depends on it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from models.scoring import ScoringConfig, plan_windows, score_windows


def short_context_logprobs(model, input_ids: np.ndarray,
                           unit_spans: Sequence[Sequence[tuple[int, int]]], n: int,
                           overlap: int, token_budget: int = 16384, block_size: int = 1024,
                           first_window: bool = False, bos_token_id: int | None = None
                           ) -> tuple[np.ndarray, np.ndarray]:
    """(log p'(n)(x_t | context) [B, T] float32, full_context [B, T] bool).

    NaN where nothing is predicted (padding, the first token of each unit) and, unless
    ``first_window``, where ``full_context`` holds (nothing was computed there).
    ``bos_token_id``: the scorer's BOS (``scoring.bos``), put before every window that starts
    inside a unit, as scoring puts it before each window of a long document; a window at a
    unit's start gets none, since packing already began the unit with it.
    """
    input_ids = np.asarray(input_ids)
    logp = np.full(input_ids.shape, np.nan, np.float32)
    full = np.zeros(input_ids.shape, bool)
    units = [(b, a, e) for b, spans in enumerate(unit_spans) for a, e in spans if e - a >= 2]
    seqs = [input_ids[b, a:e].astype(np.int64) for b, a, e in units]
    windows = plan_windows([len(s) for s in seqs], n, overlap)
    for w in windows:
        if w.start == 0:
            b, a, _ = units[w.seq]
            full[b, a + w.score_from:a + w.end] = True
    cfg = ScoringConfig(window=n, overlap=overlap, token_budget=max(token_budget, n),
                        block_size=block_size)
    inner = ScoringConfig(window=n, overlap=overlap, token_budget=max(token_budget, n + 1),
                          block_size=block_size, bos_token_id=bos_token_id)  # n + BOS
    groups = [([w for w in windows if w.start > 0], inner)]
    if first_window:
        groups.append(([w for w in windows if w.start == 0], cfg))
    for group, config in groups:
        for w, _, nll in score_windows(model, seqs, group, config):
            b, a, _ = units[w.seq]
            logp[b, a + w.score_from:a + w.end] = -nll
    return logp, full


def aligned_with_spans(n_tokens: int, spans: Sequence[Sequence[int]], logp: np.ndarray,
                       full: np.ndarray, n: int) -> bool:
    """The token_weights check: full_context exactly on each unit's first n tokens but its
    first; log-probs finite and <= 0 exactly past them (NaN at padding and unit starts)."""
    expect_full = np.zeros(n_tokens, bool)
    expect_scored = np.zeros(n_tokens, bool)
    for a, e in spans:
        expect_full[a + 1:min(a + n, e)] = True
        expect_scored[a + n:e] = True
    finite = np.isfinite(logp)
    return len(logp) == n_tokens and len(full) == n_tokens \
        and bool(np.all(full == expect_full)) and bool(np.all(finite == expect_scored)) \
        and bool(np.all(logp[finite] <= 1e-5))


def short_context_table(model, seq_ids: Sequence[int], input_ids: Sequence[Sequence[int]],
                        spans: Sequence[Sequence[Sequence[int]]], n: int, overlap: int,
                        token_budget: int, block_size: int,
                        progress: Callable[[str], None] = lambda _: None,
                        bos_token_id: int | None = None) -> dict:
    """The token_weights stage for one packed dataset: per sequence, the frozen scorer's
    log p'(n) and full_context; returns the columns, the log-probs beyond n of all
    sequences (for the histogram) and whether every sequence passed the alignment check."""
    cols: dict[str, list] = {"seq_id": [], "logp_short": [], "full_context": []}
    far, aligned, tokens = [], True, 0
    start = time.perf_counter()
    for i, (seq_id, ids, sp) in enumerate(zip(seq_ids, input_ids, spans, strict=True)):
        units = [[tuple(s) for s in sp]]
        logp, full = short_context_logprobs(model, np.asarray([ids]), units, n, overlap,
                                            token_budget, block_size,
                                            bos_token_id=bos_token_id)
        cols["seq_id"].append(seq_id)
        cols["logp_short"].append(logp[0])
        cols["full_context"].append(full[0])
        aligned &= aligned_with_spans(len(ids), sp, logp[0], full[0], n)
        far.append(logp[0][~full[0] & np.isfinite(logp[0])])
        tokens += len(ids)
        progress(f"{i + 1}/{len(seq_ids)} sequences, {tokens} tokens, "
                 f"{tokens / max(time.perf_counter() - start, 1e-9):,.0f} tokens/s")
    return {"columns": cols, "aligned": bool(aligned),
            "far_logp": np.concatenate(far) if far else np.zeros(0, np.float32)}
