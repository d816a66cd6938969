"""Short-context log-probs for token weighting: the scorer sees at most n tokens of a unit.

Both the frozen scorer (precomputed once per packed dataset) and the unfrozen one (the
model in training, cut to context n, no gradient) use this. Each unit of a packed sequence
is scored on its own, because attention never crosses a unit boundary: with windows of n
tokens and ``overlap`` (the paper: n/4, e.g. 8192 with stride 6144), every token is scored
once with at least ``overlap`` tokens of context. ``full_context`` marks the tokens of a
unit's first window, which see their whole unit, exactly as the long-context model does.

What that means depends on the variant (SPEC B.1). Unfrozen, the short- and the long-context
model are the same model with the same context there, so s_i = 0 by definition and the
first window is not run (``first_window=False``: a unit no longer than n costs nothing).
Frozen, the scorer and the model in training are different models, so s_i is not 0 on the
first window either: the frozen scorer scores every token (``first_window=True``, what
``short_context_table`` does), and the paper credits frozen-sparse's lead to exactly those
"meaningful weights to the first 8k tokens".

``n`` means one thing everywhere: ``short_context_n`` resolves the configured value (0: the
frozen scorer's own window) for the token_weights asset and the trainer alike. Scores
compare the log-probs of the same token ids under two models, so the frozen scorer, the
scorer that tokenized the data and the trained model must share a vocabulary
(``check_shared_vocabulary``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from models.scoring import ScoringConfig, plan_windows, score_windows


def short_context_n(n: int, scorer_window: int) -> int:
    """The short context n of a run: the configured ``n``, or with 0 the frozen scorer's
    window (its max_position_embeddings), for the token_weights asset and the trainer."""
    if n < 0 or (n == 0 and scorer_window < 2):
        raise ValueError(f"short context n must be > 0, or 0 with a scorer window >= 2; got "
                         f"n = {n}, window = {scorer_window}")
    return n if n > 0 else scorer_window


def scorer_window(spec: str) -> int:
    """The frozen scorer's window (max_position_embeddings) from its config alone, for a
    caller that does not load its weights (the trainer resolving n)."""
    from transformers import AutoConfig

    from models.registry import resolve_scorer

    config = AutoConfig.from_pretrained(resolve_scorer(spec).location)
    return int(getattr(config, "max_position_embeddings", 2048))


def _vocab(v) -> dict[str, int]:
    return dict(v) if isinstance(v, Mapping) else dict(v.get_vocab())


def check_shared_vocabulary(vocabularies: Mapping[str, object]) -> None:
    """Raise unless every named model has the same token -> id map (a tokenizer or a dict):
    s_i compares log p of the same token id under two models, which means nothing when an
    id stands for different tokens."""
    named = [(name, _vocab(v)) for name, v in vocabularies.items()]
    if not named:
        return
    first, a = named[0]
    for other, b in named[1:]:
        if a != b:
            diff = len(set(a.items()) ^ set(b.items()))
            raise ValueError(
                f"token weighting needs one vocabulary, but {first} ({len(a)} tokens) and "
                f"{other} ({len(b)} tokens) differ in {diff} token/id pairs: use a frozen "
                "scorer and a training model with the tokenizer that packed the data")


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
    first; log-probs finite and <= 0 exactly on every token of a unit but its first (NaN at
    padding and unit starts)."""
    expect_full = np.zeros(n_tokens, bool)
    expect_scored = np.zeros(n_tokens, bool)
    for a, e in spans:
        expect_full[a + 1:min(a + n, e)] = True
        expect_scored[a + 1:e] = True
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
    log p'(n) on every token (the first window included) and full_context; returns the
    columns, the log-probs beyond n of all sequences (for the histogram), per sequence the
    scorable fraction (counted tokens with a frozen score) and the fraction beyond the
    unit's first n (what unfrozen scoring could use), and whether every sequence passed
    the alignment check."""
    cols: dict[str, list] = {"seq_id": [], "logp_short": [], "full_context": []}
    far, aligned, tokens = [], True, 0
    scorable, beyond_n = [], []
    start = time.perf_counter()
    for i, (seq_id, ids, sp) in enumerate(zip(seq_ids, input_ids, spans, strict=True)):
        units = [[tuple(s) for s in sp]]
        logp, full = short_context_logprobs(model, np.asarray([ids]), units, n, overlap,
                                            token_budget, block_size, first_window=True,
                                            bos_token_id=bos_token_id)
        cols["seq_id"].append(seq_id)
        cols["logp_short"].append(logp[0])
        cols["full_context"].append(full[0])
        aligned &= aligned_with_spans(len(ids), sp, logp[0], full[0], n)
        far.append(logp[0][~full[0] & np.isfinite(logp[0])])
        counted = max(sum(max(int(e) - int(a) - 1, 0) for a, e in sp), 1)
        scorable.append(float(np.isfinite(logp[0]).sum()) / counted)
        beyond_n.append(float((~full[0] & np.isfinite(logp[0])).sum()) / counted)
        tokens += len(ids)
        progress(f"{i + 1}/{len(seq_ids)} sequences, {tokens} tokens, "
                 f"{tokens / max(time.perf_counter() - start, 1e-9):,.0f} tokens/s")
    return {"columns": cols, "aligned": bool(aligned),
            "far_logp": np.concatenate(far) if far else np.zeros(0, np.float32),
            "scorable_fraction": np.asarray(scorable, np.float64),
            "beyond_n_fraction": np.asarray(beyond_n, np.float64)}
