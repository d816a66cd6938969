"""Text that recurs across documents: boilerplate lines, disclaimers, quoted passages.

Why: when documents share a sentence, a chunk holding that sentence drives the entropy at
its tokens to ~0 in any other document that holds it too. Verification would keep it, yet it
tells the root nothing: it is the same text, not a dependency. Web-corpus pipelines find such
text with a counted hash per line (C4's three-line rule, datatrove's line deduplication);
here the unit is a sentence or a line, whichever is shorter, so a disclaimer inside a
paragraph is found as well as a navigation line.

Two stages, so it scales by shard: ``unit_counts`` per shard (each document counts a unit
once), then ``recurring_units`` sums the shards' counts and keeps the units found in at least
``min_docs`` documents. ``recurring_spans`` / ``recurring_token_mask`` give, per document,
the characters and tokens that lie in recurring units; anchors are not taken there, copies
are classified with it (lakehouse.copies), and chunks made only of it stay out of the index.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

RECURRING_UNITS = pa.schema([
    ("unit_hash", pa.int64()),  # blake2b-64 of the normalised unit (see normalize_unit)
    ("docs", pa.int64()),  # documents holding the unit at least once
    ("n_chars", pa.int64()),  # length of the example
    ("example", pa.string()),  # one occurrence as written
])


class RecurringSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True  # false: nothing counts as recurring
    min_docs: int = Field(3, ge=2)  # a unit in this many documents recurs (C4 uses 3 lines)
    min_chars: int = Field(12, ge=1)  # shorter units ("Yes", "Home") are never counted
    max_chunk_share: float = Field(0.9, gt=0, le=1)  # chunks this recurring stay unindexed


DEFAULT_RECURRING = RecurringSettings()

# A unit ends at a line break, or after . ! ? (and any closing quotes) before a space.
_UNIT_END = re.compile(r"\n+|(?<=[.!?])([\"'\u201d\u2019)\]]*)[ \t]+")
_SPACE = re.compile(r"\s+")


def split_units(text: str) -> list[tuple[int, int]]:
    """Character spans [start, end) of the sentences and lines of ``text``, trimmed."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _UNIT_END.finditer(text):
        _add(text, start, m.start() + len(m.group(1) or ""), spans)
        start = m.end()
    _add(text, start, len(text), spans)
    return spans


def _add(text: str, a: int, b: int, spans: list[tuple[int, int]]) -> None:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    if b > a:
        spans.append((a, b))


def normalize_unit(unit: str) -> str:
    """Case-folded, NFKC, whitespace collapsed: copies that differ only there hash alike.

    Digits are kept: two sentences of one template that differ only in a year or a code
    state different facts, and the fact is what a dependency is about.
    """
    u = unicodedata.normalize("NFKC", unit).casefold()
    return _SPACE.sub(" ", u).strip()


def unit_hash(normalized: str) -> int:
    """Signed 64-bit hash (fits an Arrow int64 column and a DuckDB BIGINT)."""
    h = hashlib.blake2b(normalized.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(h, "little", signed=True)


def _doc_units(text: str, min_chars: int) -> Iterable[tuple[int, int, int]]:
    for a, b in split_units(text):
        if b - a >= min_chars:
            yield unit_hash(normalize_unit(text[a:b])), a, b


def unit_counts(texts: Sequence[str], settings: RecurringSettings = DEFAULT_RECURRING
                ) -> pa.Table:
    """Per shard: every unit of at least ``min_chars`` characters with the number of
    documents holding it (a document counts a unit once). Schema RECURRING_UNITS."""
    docs: dict[int, int] = {}
    example: dict[int, str] = {}
    for text in texts:
        seen = set()
        for h, a, b in _doc_units(text or "", settings.min_chars):
            if h not in seen:
                seen.add(h)
                docs[h] = docs.get(h, 0) + 1
                example.setdefault(h, text[a:b])
    keys = sorted(docs)
    return pa.Table.from_pydict({"unit_hash": keys, "docs": [docs[k] for k in keys],
                                 "n_chars": [len(example[k]) for k in keys],
                                 "example": [example[k] for k in keys]},
                                schema=RECURRING_UNITS)


def recurring_units(counts: Sequence[pa.Table],
                    settings: RecurringSettings = DEFAULT_RECURRING
                    ) -> tuple[pa.Table, dict]:
    """Sum per-shard ``unit_counts`` (a document lives in one shard, so the sums are exact)
    and keep the units of at least ``min_docs`` documents, most frequent first.

    Stats: units seen, recurring units, and the share of all unit occurrences they make.
    """
    docs: dict[int, int] = {}
    example: dict[int, str] = {}
    for t in counts:
        for h, n, ex in zip(t["unit_hash"].to_pylist(), t["docs"].to_pylist(),
                            t["example"].to_pylist(), strict=True):
            docs[h] = docs.get(h, 0) + n
            example.setdefault(h, ex)
    keep = [h for h, n in docs.items() if n >= settings.min_docs] if settings.enabled else []
    keep.sort(key=lambda h: (-docs[h], h))
    table = pa.Table.from_pydict({"unit_hash": keep, "docs": [docs[h] for h in keep],
                                  "n_chars": [len(example[h]) for h in keep],
                                  "example": [example[h] for h in keep]},
                                 schema=RECURRING_UNITS)
    total = sum(docs.values())
    stats = {"units": len(docs), "recurring_units": len(keep),
             "recurring_occurrences": int(sum(docs[h] for h in keep)),
             "recurring_share": float(sum(docs[h] for h in keep) / total) if total else 0.0,
             "min_docs": settings.min_docs}
    return table, stats


def recurring_spans(text: str, recurring: set[int] | frozenset[int],
                    settings: RecurringSettings = DEFAULT_RECURRING) -> list[tuple[int, int]]:
    """Character spans of ``text`` that are recurring units, in order."""
    if not recurring or not settings.enabled:
        return []
    return [(a, b) for h, a, b in _doc_units(text, settings.min_chars) if h in recurring]


def recurring_token_mask(char_start: np.ndarray, char_end: np.ndarray,
                         spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """Boolean per token: the token overlaps a recurring span by at least one character that
    is not its leading space (tokens " Home" start on the space before the unit)."""
    starts = np.asarray(char_start, np.int64)
    ends = np.asarray(char_end, np.int64)
    mask = np.zeros(len(starts), bool)
    for a, b in spans:
        mask |= (ends > a) & (starts < b) & (np.maximum(starts, a) < np.minimum(ends, b))
    return mask


def recurring_share(mask: np.ndarray, start: int, end: int) -> float:
    """Share of tokens [start, end) that lie in recurring text (0 for an empty span)."""
    return float(np.mean(mask[start:end])) if end > start else 0.0


def recurring_char_share(text: str, recurring: set[int] | frozenset[int],
                         settings: RecurringSettings = DEFAULT_RECURRING) -> float:
    """Share of the non-space characters of ``text`` (a chunk) that lie in recurring units.

    The chunk's own sentences and lines are hashed; a sentence cut at the chunk's edge hashes
    differently from the whole one and so counts as not recurring, which errs on the side of
    keeping a chunk in the index."""
    total = len(text) - sum(c.isspace() for c in text)
    if total == 0:
        return 0.0
    inside = sum(b - a - sum(c.isspace() for c in text[a:b])
                 for a, b in recurring_spans(text, recurring, settings))
    return inside / total


def indexable(texts: Sequence[str], recurring: set[int] | frozenset[int],
              settings: RecurringSettings = DEFAULT_RECURRING) -> np.ndarray:
    """Per chunk: whether it goes into the retrieval index. A chunk whose text is at least
    ``max_chunk_share`` recurring units (a disclaimer, a navigation block) can only be a
    copy of the same text elsewhere, never a dependency, so it is not offered as one."""
    if not recurring or not settings.enabled:
        return np.ones(len(texts), bool)
    return np.array([recurring_char_share(t or "", recurring, settings)
                     < settings.max_chunk_share for t in texts], bool)


TERM_FREQUENCIES = pa.schema([
    ("term_hash", pa.int64()),  # unit_hash of the normalised word (see normalize_term)
    ("docs", pa.int64()),  # documents holding the word
])
_TERM = re.compile(r"\w+")


def normalize_term(word: str) -> str:
    """A word as counted: NFKC, case-folded, letters and digits only ("Marta," -> "marta")."""
    return "".join(_TERM.findall(unicodedata.normalize("NFKC", word).casefold()))


def term_counts(texts: Sequence[str]) -> pa.Table:
    """Per shard: documents holding each word (the document frequency behind IDF), so that a
    chunk explaining a word that many documents hold (a template's words, a topic's
    vocabulary) is told from one explaining a name only it and the root share."""
    docs: dict[int, int] = {}
    for text in texts:
        for h in {unit_hash(normalize_term(w)) for w in _TERM.findall(text or "")}:
            docs[h] = docs.get(h, 0) + 1
    keys = sorted(docs)
    return pa.Table.from_pydict({"term_hash": keys, "docs": [docs[k] for k in keys]},
                                schema=TERM_FREQUENCIES)


def document_frequencies(counts: Sequence[pa.Table], n_docs: int) -> tuple[pa.Table, dict]:
    """Sum per-shard ``term_counts``; stats carry ``documents`` (``n_docs``, the corpus
    size the frequencies are relative to) and the number of distinct words."""
    docs: dict[int, int] = {}
    for t in counts:
        for h, n in zip(t["term_hash"].to_pylist(), t["docs"].to_pylist(), strict=True):
            docs[h] = docs.get(h, 0) + n
    keys = sorted(docs)
    table = pa.Table.from_pydict({"term_hash": keys, "docs": [docs[k] for k in keys]},
                                 schema=TERM_FREQUENCIES)
    return table, {"documents": n_docs, "terms": len(keys)}


def recurring_masks(tokens: pa.Table, texts: Mapping[str, str],
                    recurring: set[int] | frozenset[int],
                    settings: RecurringSettings = DEFAULT_RECURRING) -> dict[str, np.ndarray]:
    """doc_id -> per-token recurring mask for the documents of a tokenized_docs table
    (columns doc_id, char_start, char_end); documents without recurring text are left out."""
    out = {}
    for d, cs, ce in zip(tokens["doc_id"].to_pylist(), tokens["char_start"].to_pylist(),
                         tokens["char_end"].to_pylist(), strict=True):
        spans = recurring_spans(texts[d], recurring, settings)
        if spans:
            out[d] = recurring_token_mask(np.asarray(cs), np.asarray(ce), spans)
    return out
