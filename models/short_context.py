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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from lakehouse.packed_files import list_values
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


FAR_SAMPLE = 1_000_000  # log-probs beyond n kept for the histogram (a seeded reservoir)


@dataclass
class ShortContextSummary:
    """What the token_weights asset reports, accumulated sequence by sequence so that a
    dataset of any size is summarised in bounded memory: per sequence the scorable fraction
    (counted tokens with a frozen score) and the fraction beyond the unit's first n (what
    unfrozen scoring could use), whether every sequence passed the alignment check, and a
    seeded reservoir sample of at most ``far_cap`` log-probs beyond n (exact below it)."""

    n: int
    far_cap: int = FAR_SAMPLE
    seed: int = 0
    aligned: bool = True
    sequences: int = 0
    tokens: int = 0
    far_seen: int = 0
    scorable: list[float] = field(default_factory=list)
    beyond_n: list[float] = field(default_factory=list)
    _far: list[np.ndarray] = field(default_factory=list)
    _rng: np.random.Generator | None = None

    def add(self, ids_len: int, spans: Sequence[Sequence[int]], logp: np.ndarray,
            full: np.ndarray) -> None:
        self.aligned &= aligned_with_spans(ids_len, spans, logp, full, self.n)
        scored = np.isfinite(logp)
        counted = max(sum(max(int(e) - int(a) - 1, 0) for a, e in spans), 1)
        self.scorable.append(float(scored.sum()) / counted)
        self.beyond_n.append(float((~full & scored).sum()) / counted)
        self.sequences += 1
        self.tokens += ids_len
        self._keep(logp[~full & scored].astype(np.float32))

    def _keep(self, values: np.ndarray) -> None:
        """Reservoir sampling (Algorithm R, vectorised per sequence): every value seen so
        far is in the sample with the same probability, whatever the dataset's size."""
        if not values.size:
            return
        room = self.far_cap - min(self.far_seen, self.far_cap)  # the sample fills first
        if room > 0:
            head = values[:room]
            self._far.append(head.copy())
            self.far_seen += head.size
            values = values[room:]
        if not values.size:
            return
        if self._rng is None:
            self._rng = np.random.default_rng(self.seed)
        if len(self._far) > 1:
            self._far = [np.concatenate(self._far)]
        sample = self._far[0]
        seen = self.far_seen + np.arange(1, values.size + 1)  # 1-based index of each value
        slot = (self._rng.random(values.size) * seen).astype(np.int64)
        hit = slot < self.far_cap
        sample[slot[hit]] = values[hit]  # later values overwrite earlier ones, as in R
        self.far_seen += values.size

    @property
    def far_logp(self) -> np.ndarray:
        """The log-probs beyond n: all of them, or the reservoir once there were more."""
        return np.concatenate(self._far) if self._far else np.zeros(0, np.float32)

    @property
    def scorable_fraction(self) -> np.ndarray:
        return np.asarray(self.scorable, np.float64)

    @property
    def beyond_n_fraction(self) -> np.ndarray:
        return np.asarray(self.beyond_n, np.float64)


def short_context_columns(model, seq_ids: Sequence[int], input_ids: Sequence[Sequence[int]],
                          spans: Sequence[Sequence[Sequence[int]]], n: int, overlap: int,
                          token_budget: int, block_size: int, summary: ShortContextSummary,
                          bos_token_id: int | None = None) -> dict[str, list]:
    """The frozen scorer's log p'(n) on every token (the first window included) and
    full_context, per sequence of one batch (a row group); each sequence also goes into
    ``summary``."""
    cols: dict[str, list] = {"seq_id": [], "logp_short": [], "full_context": []}
    for seq_id, ids, sp in zip(seq_ids, input_ids, spans, strict=True):
        units = [[tuple(int(x) for x in s) for s in sp]]
        logp, full = short_context_logprobs(model, np.asarray(ids)[None], units, n, overlap,
                                            token_budget, block_size, first_window=True,
                                            bos_token_id=bos_token_id)
        cols["seq_id"].append(int(seq_id))
        cols["logp_short"].append(logp[0])
        cols["full_context"].append(full[0])
        summary.add(len(ids), units[0], logp[0], full[0])
    return cols


def short_context_row_groups(model, groups: Iterable[tuple[str, int, object]], n: int,
                             overlap: int, token_budget: int, block_size: int,
                             summary: ShortContextSummary, bos_token_id: int | None = None,
                             progress: Callable[[str], None] = lambda _: None
                             ) -> Iterator[dict[str, list]]:
    """The token_weights stage streamed: for each ``(file, row group, table)`` of packed
    sequences (``lakehouse.packed_files.row_groups``; columns seq_id, input_ids, indices),
    the columns of its weights, so memory holds one row group whatever the dataset's size.
    Rows must come in ascending seq_id, as packing writes them (the weights are joined by
    it); anything else is refused naming the file and row group. ``progress`` gets counts
    and the rate after each row group."""
    start, last = time.perf_counter(), None
    for file, group, table in groups:
        ids = table["seq_id"].to_numpy().astype(np.int64)
        if ids.size and ((last is not None and ids[0] <= last) or np.any(np.diff(ids) <= 0)):
            raise ValueError(f"{file}, row group {group}: seq_id not ascending (after "
                             f"{last}): re-materialize the packed dataset")
        last = int(ids[-1]) if ids.size else last
        yield short_context_columns(model, ids.tolist(), list_values(table["input_ids"]),
                                    table["indices"].to_pylist(), n, overlap, token_budget,
                                    block_size, summary, bos_token_id)
        progress(f"{summary.sequences} sequences, {summary.tokens:,} tokens, "
                 f"{summary.tokens / max(time.perf_counter() - start, 1e-9):,.0f} tokens/s")


def short_context_table(model, seq_ids: Sequence[int], input_ids: Sequence[Sequence[int]],
                        spans: Sequence[Sequence[Sequence[int]]], n: int, overlap: int,
                        token_budget: int, block_size: int,
                        progress: Callable[[str], None] = lambda _: None,
                        bos_token_id: int | None = None) -> dict:
    """``short_context_columns`` over sequences held in memory (tests, small data); returns
    the columns, the log-probs beyond n, the per-sequence scorable and beyond-n fractions and
    whether every sequence passed the alignment check. The asset streams row groups
    through ``short_context_columns`` instead."""
    summary = ShortContextSummary(n)
    start = time.perf_counter()
    cols = short_context_columns(model, seq_ids, input_ids, spans, n, overlap, token_budget,
                                 block_size, summary, bos_token_id)
    progress(f"{summary.sequences} sequences, {summary.tokens} tokens, "
             f"{summary.tokens / max(time.perf_counter() - start, 1e-9):,.0f} tokens/s")
    return {"columns": cols, "aligned": bool(summary.aligned), "far_logp": summary.far_logp,
            "scorable_fraction": summary.scorable_fraction,
            "beyond_n_fraction": summary.beyond_n_fraction}
