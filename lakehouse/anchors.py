"""Anchors (EntropyLong step 1) and their retrieval queries (step 2).

Two rules, both "mean + alpha * std of a per-document score":

* ``entropy`` (the paper): a token is an anchor when its entropy H(t) exceeds
  mean(H) + alpha * std(H) over the document.
* ``surprise`` (default): words, not tokens, are scored by the gold tokens' NLL summed over
  the word; a word above mean + alpha * std of the document's word scores gets one anchor,
  at its most surprising token. Why: in free prose a small scorer is about as unsure of the
  next ordinary word as of an invented name, so entropy alone ranks facts among ordinary
  words (on the realistic planted corpus, 12 of 96 fact spans hold an anchor at alpha 2).
  What only another document can explain is a token the scorer did not expect although it
  had a fair idea what comes: high NLL. Summing over the word puts a multi-token name
  (whose first token carries most of the surprise) on one footing with a one-token word,
  and one anchor per word stops a long name from taking several queries.

Anchors are never taken inside text that recurs across documents (lakehouse.recurring):
there a chunk holding the same boilerplate explains everything and nothing. Position 0
carries no prediction (NaN) without a BOS and is then never an anchor; statistics ignore NaN.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from lakehouse import tables

QueryMode = Literal["symmetric", "prefix"]


class AnchorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: Literal["surprise", "entropy"] = "surprise"  # entropy: the paper's per-token rule
    alpha: float = 2.0  # tau = mean + alpha * std of the rule's per-document scores
    max_per_doc: int | None = Field(None, gt=0)  # cap: the highest-scoring anchors kept
    query_window: int = Field(16, gt=0)  # w: query = tokens [t-w, t+w) (or [t-2w, t))
    query_mode: QueryMode = "symmetric"
    skip_recurring: bool = True  # no anchor inside text recurring across documents
    word_tokens: int | None = Field(4, gt=0)  # surprise rule: a word scores the summed NLL
    # of its this many most surprising tokens (None: all of them), so that a hash, a URL
    # or a long number is not an anchor for its length alone


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


def word_ids(text: str, char_start: np.ndarray, char_end: np.ndarray) -> np.ndarray:
    """Word index per token: a word starts at a token that begins with whitespace or a
    non-alphanumeric character, or that follows one (so "E41-KRX7" is three words and a
    name split into sub-words is one)."""
    n = len(char_start)
    out = np.zeros(n, np.int64)
    k = 0
    for t in range(n):
        a, b = int(char_start[t]), int(char_end[t])
        first = text[a] if b > a else " "
        prev = text[int(char_end[t - 1]) - 1] if t and int(char_end[t - 1]) > 0 else " "
        if t and (first.isspace() or not first.isalnum() or not prev.isalnum()):
            k += 1
        out[t] = k
    return out


def word_scores(nll: np.ndarray, words: np.ndarray, top: int | None = None) -> np.ndarray:
    """Per word, the summed NLL of its ``top`` most surprising scored tokens (all of them
    with None; unscored tokens count 0).

    Why a cap: a random string (a hash, base64, a long number, a URL's path) costs the
    scorer a few nats on every one of its many tokens, so its sum grows with its length
    although nothing in another document explains it better than the string itself; a name
    the scorer did not expect spends most of its surprise on its first few sub-words. In
    text without spaces (Chinese, Japanese, Thai) a "word" is a whole run of letters, and
    the cap makes its score that of its few most surprising tokens, not of its length.
    """
    g = np.where(np.isfinite(nll), np.asarray(nll, np.float64), 0.0)
    n_words = int(words.max()) + 1 if len(words) else 0
    if top is not None and len(g):
        order = np.lexsort((-g, words))  # by word, most surprising first
        first = np.searchsorted(words[order], words[order], side="left")
        rank = np.arange(len(g)) - first
        keep = np.zeros(len(g), bool)
        keep[order[rank < top]] = True
        g = np.where(keep, g, 0.0)
    return np.bincount(words, weights=g, minlength=n_words)


def surprise_anchors(nll: np.ndarray, words: np.ndarray, alpha: float,
                     eligible: np.ndarray | None = None, top: int | None = None
                     ) -> tuple[np.ndarray, np.ndarray, float]:
    """(positions, word scores at them, tau) of the ``surprise`` rule.

    A word's score is the summed NLL of its ``top`` most surprising tokens (``word_scores``;
    a word with no scored token is not scored). tau = mean + alpha * std over the scored
    words. Each word above tau gives its highest-NLL ``eligible`` token.
    """
    g = np.asarray(nll, np.float64)
    scored = np.isfinite(g)
    n_words = int(words.max()) + 1 if len(words) else 0
    sums = word_scores(g, words, top)
    has = np.bincount(words, weights=scored.astype(np.float64), minlength=n_words) > 0
    if not has.any():
        return np.zeros(0, np.int64), np.zeros(0, np.float64), float("nan")
    tau = float(sums[has].mean() + alpha * sums[has].std())
    ok = scored if eligible is None else scored & eligible
    key = np.where(ok, g, -np.inf)
    positions, scores = [], []
    for w in np.flatnonzero(has & (sums > tau)):
        idx = np.flatnonzero(words == w)
        best = idx[np.argmax(key[idx])]
        if np.isfinite(key[best]):
            positions.append(int(best))
            scores.append(float(sums[w]))
    return np.asarray(positions, np.int64), np.asarray(scores, np.float64), tau


ANCHOR_COLUMNS = ("doc_id", "entropy", "nll", "mean", "std")


def anchor_table(profiles: pa.Table, tokens: pa.Table, texts: Mapping[str, str],
                 recurring: Mapping[str, np.ndarray] | None, settings: AnchorSettings
                 ) -> tuple[pa.Table, dict]:
    """The anchors stage: the ANCHORS table of every profiled document.

    ``profiles``: entropy_profiles columns doc_id, entropy, nll, mean, std (the entropy
    rule's tau comes from the fp32 mean/std, not the fp16 copy); ``tokens``: tokenized_docs
    columns doc_id, char_start, char_end; ``texts``: doc_id -> text; ``recurring``: doc_id ->
    per-token recurring mask (lakehouse.recurring.recurring_masks), or None.
    Returns (table, stats); stats carry the anchor rate per 1K scored tokens, the number of
    candidate anchors dropped inside recurring text, and documents without any anchor.
    """
    offsets = {d: (np.asarray(s, np.int64), np.asarray(e, np.int64)) for d, s, e in zip(
        tokens["doc_id"].to_pylist(), tokens["char_start"].to_pylist(),
        tokens["char_end"].to_pylist(), strict=True)}
    rows: list[dict] = []
    no_anchor = skipped = n_tokens = 0
    cols = [profiles[c].to_pylist() for c in ANCHOR_COLUMNS]
    for doc_id, ent, nll, mean, std in zip(*cols, strict=True):
        h = np.asarray(ent, dtype=np.float32)
        g = np.asarray(nll, dtype=np.float32)
        n_tokens += int(np.isfinite(h).sum())
        starts, ends = offsets[doc_id]
        text = texts[doc_id]
        mask = None
        if settings.skip_recurring and recurring is not None and doc_id in recurring:
            mask = np.asarray(recurring[doc_id], bool)
        if settings.rule == "entropy":
            tau = mean + settings.alpha * std
            positions = select_anchors(h, tau)
            scores = h[positions].astype(np.float64)
            if mask is not None:
                keep = ~mask[positions]
                skipped += int((~keep).sum())
                positions, scores = positions[keep], scores[keep]
        else:
            words = word_ids(text, starts, ends)
            positions, scores, tau = surprise_anchors(g, words, settings.alpha,
                                                      top=settings.word_tokens)
            if mask is not None:
                keep = ~mask[positions]
                skipped += int((~keep).sum())
                positions, scores = positions[keep], scores[keep]
        if settings.max_per_doc is not None and positions.size > settings.max_per_doc:
            order = np.lexsort((positions, -scores))[:settings.max_per_doc]
            order.sort()
            positions, scores = positions[order], scores[order]
        if positions.size == 0:
            no_anchor += 1
        for t, sc in zip(positions.tolist(), scores.tolist(), strict=True):
            lo, hi = query_span(t, len(h), settings.query_window, settings.query_mode)
            rows.append({"doc_id": doc_id, "position": t, "entropy": float(h[t]),
                         "nll": float(g[t]), "score": sc, "threshold": float(tau),
                         "rule": settings.rule, "query_mode": settings.query_mode,
                         "query_start": lo, "query_end": hi,
                         "query": span_text(text, starts, ends, lo, hi)})
    n_docs = profiles.num_rows
    stats = {"anchors": len(rows), "docs": n_docs, "docs_without_anchors": no_anchor,
             "anchors_per_doc": len(rows) / n_docs if n_docs else 0.0,
             "anchors_per_1k_tokens": 1000 * len(rows) / n_tokens if n_tokens else 0.0,
             "skipped_recurring": skipped, "rule": settings.rule, "alpha": settings.alpha,
             "query_mode": settings.query_mode}
    return tables.from_rows(rows, tables.ANCHORS), stats
