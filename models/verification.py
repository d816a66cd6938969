"""Entropy-reduction verification (EntropyLong step 3), grouped by (document, chunk).

For a root document D and a candidate chunk C, H'(t) is the entropy at anchor t of D with C
prepended. Every anchor of D that retrieved C is read off the same forward pass over
``[C; D[:last anchor + 1]]`` (the document is cut after its last such anchor: later tokens
cannot change earlier predictions), so the work is one pass per (D, C) pair, never one per
(anchor, candidate). ``verify_naive`` is the one-pass-per-pair reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.scoring import DEFAULT_SCORING, ScoringConfig, model_window, score_positions


@dataclass(frozen=True)
class Pair:
    """Anchors ``positions`` of document ``doc`` that retrieved chunk ``chunk``."""

    doc: int
    chunk: int
    positions: np.ndarray  # ascending token positions in the document


@dataclass
class PairScores:
    pair: Pair
    entropy: np.ndarray  # H' at each position, chunk prepended
    nll: np.ndarray  # gold NLL at each position, chunk prepended
    status: str  # "ok" | "too_long" (sequence exceeds the window: not scored, NaN)


def group_pairs(doc_index: Sequence[int], positions: Sequence[int],
                chunk_index: Sequence[int]) -> list[Pair]:
    """(anchor, candidate) rows -> one Pair per (document, chunk), positions ascending."""
    groups: dict[tuple[int, int], set[int]] = {}
    for d, t, c in zip(doc_index, positions, chunk_index, strict=True):
        groups.setdefault((int(d), int(c)), set()).add(int(t))
    return [Pair(d, c, np.array(sorted(ts), dtype=np.int64))
            for (d, c), ts in sorted(groups.items())]


def verify_grouped(model, docs: Sequence[np.ndarray], chunks: Sequence[np.ndarray],
                   pairs: Sequence[Pair], config: ScoringConfig = DEFAULT_SCORING
                   ) -> tuple[list[PairScores], int]:
    """H' and NLL' for every pair; returns (scores, tokens forwarded)."""
    window = config.window or model_window(model)
    seqs, pos, fit = [], [], []
    for p in pairs:
        c = np.asarray(chunks[p.chunk])
        d = np.asarray(docs[p.doc])[:int(p.positions[-1]) + 1]
        if len(c) + len(d) > window:
            fit.append(False)
            continue
        fit.append(True)
        seqs.append(np.concatenate([c, d]).astype(np.int64))
        pos.append(p.positions + len(c))
    scored = iter(score_positions(model, seqs, pos, config))
    out = []
    for p, ok in zip(pairs, fit, strict=True):
        if ok:
            s = next(scored)
            out.append(PairScores(p, s.entropy, s.nll, "ok"))
        else:
            nan = np.full(len(p.positions), np.nan, np.float32)
            out.append(PairScores(p, nan, nan.copy(), "too_long"))
    return out, int(sum(len(s) for s in seqs))


def verify_naive(model, docs: Sequence[np.ndarray], chunks: Sequence[np.ndarray],
                 pairs: Sequence[Pair], config: ScoringConfig = DEFAULT_SCORING
                 ) -> tuple[list[PairScores], int]:
    """Reference: one forward pass per (anchor, chunk) over ``[C; D[:t + 1]]``."""
    out, tokens = [], 0
    for p in pairs:
        c = np.asarray(chunks[p.chunk])
        ent = np.zeros(len(p.positions), np.float32)
        nll = np.zeros(len(p.positions), np.float32)
        for i, t in enumerate(p.positions):
            seq = np.concatenate([c, np.asarray(docs[p.doc])[:int(t) + 1]]).astype(np.int64)
            (s,) = score_positions(model, [seq], [np.array([len(seq) - 1])], config)
            ent[i], nll[i] = s.entropy[0], s.nll[0]
            tokens += len(seq)
        out.append(PairScores(p, ent, nll, "ok"))
    return out, tokens
