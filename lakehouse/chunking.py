"""Chunking of the retrieval pool by tokens, cut at sentence ends where possible."""

from __future__ import annotations

import numpy as np

_ENDERS = ".!?"
_CLOSERS = "\"')]\u201d\u2019"


def sentence_ends(text: str, char_end: np.ndarray) -> np.ndarray:
    """Boolean per token: the token ends a sentence or paragraph.

    A token ends a sentence when the text up to its end finishes with ., ! or ? (optionally
    followed by a closing quote or bracket) and the next character is whitespace or the end.
    """
    out = np.zeros(len(char_end), dtype=bool)
    n = len(text)
    for i, end in enumerate(char_end):
        end = int(end)
        if end <= 0:
            continue
        nxt = text[end] if end < n else " "
        if not nxt.isspace():
            continue
        j = end - 1
        while j > 0 and text[j] in _CLOSERS:
            j -= 1
        if text[j] in _ENDERS or (end < n - 1 and text[end:end + 2] == "\n\n"):
            out[i] = True
    return out


def chunk_spans(n_tokens: int, is_end: np.ndarray, size: int, min_size: int | None = None
                ) -> list[tuple[int, int]]:
    """Token spans [start, end) of at most ``size`` tokens covering the document.

    Each chunk ends after the last sentence end that gives it at least ``min_size`` tokens
    (default size // 2); with none in reach it is cut at ``size`` tokens.
    """
    if size < 1:
        raise ValueError(f"chunk size must be positive, got {size}")
    min_size = size // 2 if min_size is None else min_size
    spans, start = [], 0
    ends = np.flatnonzero(is_end) + 1  # candidate cut points (exclusive ends)
    while start < n_tokens:
        limit = min(start + size, n_tokens)
        if limit == n_tokens:
            spans.append((start, n_tokens))
            break
        lo = np.searchsorted(ends, start + min_size, side="left")
        hi = np.searchsorted(ends, limit, side="right")
        cut = int(ends[hi - 1]) if hi > lo else limit
        spans.append((start, cut))
        start = cut
    return spans
