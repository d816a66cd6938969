"""Chunking of the retrieval pool by tokens, cut at sentence ends where possible."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from lakehouse import tables
from lakehouse.anchors import span_text
from lakehouse.ids import chunk_id

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


def chunk_table(corpus: str, shard: str, tokenized: pa.Table, texts: Mapping[str, str],
                size: int, min_size: int | None = None) -> pa.Table:
    """The chunks stage: every document of a shard cut into chunks of at most ``size`` tokens
    at sentence ends, as rows of the ``chunks`` table (ids, token span, text, token ids).

    ``tokenized`` has the tokenized_docs columns; ``texts`` maps doc_id to the cleaned text
    the offsets point into.
    """
    rows: list[dict] = []
    for doc, ids, cs, ce in zip(*(tokenized[c].to_pylist() for c in
                                  ("doc_id", "input_ids", "char_start", "char_end")),
                                strict=True):
        text = texts[doc]
        starts, ends = np.asarray(cs, np.int64), np.asarray(ce, np.int64)
        for i, (a, b) in enumerate(chunk_spans(len(ids), sentence_ends(text, ends), size,
                                               min_size)):
            rows.append({"chunk_id": chunk_id(doc, a, b), "doc_id": doc, "corpus": corpus,
                         "shard": shard, "chunk_index": i, "token_start": a, "token_end": b,
                         "n_tokens": b - a, "text": span_text(text, starts, ends, a, b),
                         "input_ids": ids[a:b]})
    return tables.from_rows(rows, tables.CHUNKS)
