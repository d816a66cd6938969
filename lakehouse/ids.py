"""Stable identifiers shared by every table of the lake.

Ids are content- or source-derived hashes, never row numbers, so that re-running a stage or
re-ordering a shard never changes what a row is called.
"""

from __future__ import annotations

import hashlib


def _digest(*parts: str, size: int = 8) -> str:
    h = hashlib.blake2b(digest_size=size)
    for part in parts:
        h.update(part.encode("utf-8"))
        h.update(b"\x1f")  # unit separator: ("ab", "c") and ("a", "bc") hash differently
    return h.hexdigest()


def doc_id(corpus: str, source_id: str | None, text: str) -> str:
    """Id of a document: hash of (corpus, source id) or, without a source id, (corpus, text)."""
    if source_id is not None and source_id != "":
        return _digest("id", corpus, source_id)
    return _digest("text", corpus, text)


def content_hash(text: str) -> str:
    """Hash of cleaned text, used for exact-duplicate removal."""
    return _digest("content", text, size=16)


def chunk_id(doc: str, start: int, end: int) -> str:
    """Id of a chunk: its document id plus its token span [start, end)."""
    return f"{doc}:{start}-{end}"
