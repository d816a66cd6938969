"""Copies are not dependencies: classify (anchor, chunk) rows as `copy` or `informative`.

A chunk that repeats the text around an anchor drives H' to ~0 and passes any epsilon, yet
it tells the root nothing the root does not already say: the tokens are predicted because
they are being read a second time. A row is a *copy* when

* ``context``: the chunk contains the anchor's preceding context verbatim, i.e. the ``k``
  tokens before the anchor followed by the anchor token (the whole prefix when the anchor
  is closer than ``k`` to the start), or
* ``recurring``: the anchor token lies inside text that recurs across documents
  (lakehouse.recurring: boilerplate lines, disclaimers, quotations),

and *informative* otherwise. A true source that names the same entity in its own words
shares the entity's tokens but not the ``k`` tokens before them, so it stays informative.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

INFORMATIVE, COPY = "informative", "copy"


def _contains(haystack: bytes, needle: bytes, item: int) -> bool:
    """``needle`` occurs in ``haystack`` at an offset that is a multiple of ``item`` bytes."""
    at = haystack.find(needle)
    while at >= 0:
        if at % item == 0:
            return True
        at = haystack.find(needle, at + 1)
    return False


def context_copied(doc: np.ndarray, position: int, chunk: np.ndarray, k: int) -> bool:
    """The chunk holds ``doc[position - k : position + 1]`` contiguously (clipped at 0)."""
    gram = np.ascontiguousarray(np.asarray(doc[max(0, position - k):position + 1], "<i4"))
    hay = np.ascontiguousarray(np.asarray(chunk, "<i4"))
    if gram.size == 0 or gram.size > hay.size:
        return False
    return _contains(hay.tobytes(), gram.tobytes(), 4)


def classify_rows(doc_index: Sequence[int], positions: Sequence[int],
                  chunk_index: Sequence[int], docs: Sequence[np.ndarray],
                  chunks: Sequence[np.ndarray], k: int,
                  recurring: Mapping[int, np.ndarray] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(class, reason) per row: ``copy``/``informative`` and ``context``, ``recurring``,
    ``context+recurring`` or ``""``.

    ``docs[doc_index[i]]``/``chunks[chunk_index[i]]`` are token arrays; ``recurring`` maps a
    document index to its per-token recurring mask (lakehouse.recurring), absent = none.
    ``k = 0`` checks only the anchor token itself, which every chunk naming the same entity
    holds: useful as an ablation, never as a default.
    """
    n = len(positions)
    classes = np.full(n, INFORMATIVE, dtype=object)
    reasons = np.full(n, "", dtype=object)
    hay: dict[int, bytes] = {}
    for i, (d, t, c) in enumerate(zip(doc_index, positions, chunk_index, strict=True)):
        d, t, c = int(d), int(t), int(c)
        why = []
        if c not in hay:
            hay[c] = np.ascontiguousarray(np.asarray(chunks[c], "<i4")).tobytes()
        gram = np.ascontiguousarray(np.asarray(docs[d][max(0, t - k):t + 1], "<i4"))
        if gram.size and _contains(hay[c], gram.tobytes(), 4):
            why.append("context")
        mask = recurring.get(d) if recurring else None
        if mask is not None and t < len(mask) and mask[t]:
            why.append("recurring")
        if why:
            classes[i] = COPY
            reasons[i] = "+".join(why)
    return classes, reasons


def copied_positions(doc: np.ndarray, chunk: np.ndarray, k: int) -> np.ndarray:
    """Bool per position of ``doc``: ``context_copied`` at every position, i.e. the chunk
    holds the position's token with the ``k`` tokens before it (clipped at the start)."""
    doc = np.asarray(doc, np.int64)
    chunk = np.asarray(chunk, np.int64)
    out = np.zeros(len(doc), bool)
    if len(chunk) <= k or len(doc) == 0:
        return np.array([context_copied(doc, t, chunk, k) for t in range(len(doc))], bool)
    grams = {tuple(chunk[i:i + k + 1].tolist()) for i in range(len(chunk) - k)}
    for t in range(len(doc)):
        out[t] = (tuple(doc[t - k:t + 1].tolist()) in grams if t >= k
                  else context_copied(doc, t, chunk, k))
    return out
