"""Text normalisation and the reasons a raw row is quarantined.

``clean_text`` is the definition: line ends unified, control characters dropped, NFC, ends
trimmed. ``clean_texts`` applies it to a whole Arrow column at corpus speed and gives the same
strings: most rows consist only of characters that no step changes, so the column work is to
find, per row, the span that holds the others (control characters, carriage returns, and the
characters NFC can alter), clean each distinct span with ``clean_text``'s own steps, splice it
back and trim the ends. Cleaning the span alone is exact because the text on either side of it
consists of characters that are NFC-stable (quick check Yes, combining class 0): NFC never
reaches across such a character (UAX #15, "Stable Code Points"), and the tables used are
Python's own, so the result is the per-row result for every Unicode version.
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum
from functools import cache

import numpy as np
import polars as pl
import pyarrow as pa


class Reason(StrEnum):
    """Why a raw row did not become a document. Stored verbatim in the quarantine table."""

    MISSING_TEXT = "missing_text"
    NON_STRING_TEXT = "non_string_text"
    EMPTY_AFTER_CLEANING = "empty_after_cleaning"
    UNDECODABLE_BYTES = "undecodable_bytes"
    TOO_LONG = "too_long"
    MALFORMED_JSON = "malformed_json"
    DUPLICATE_ID = "duplicate_id"


# C0/C1 control characters except tab and newline, lone surrogates (which cannot be written as
# UTF-8), and the byte-order mark. Carriage returns are turned into newlines before this runs.
_STRIP = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufeff]")


def _unify_and_strip(text: str) -> str:
    return _STRIP.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def clean_text(text: str) -> str:
    """NFC-normalise, unify line ends, drop NUL and control characters, trim the ends."""
    return unicodedata.normalize("NFC", _unify_and_strip(text)).strip()


def _clean_span(text: str) -> str:
    """``clean_text`` without the trim: what a span inside a longer text becomes."""
    return unicodedata.normalize("NFC", _unify_and_strip(text))


@cache
def nfc_unstable_codepoints() -> frozenset[int]:
    """Code points NFC may change or combine with a neighbour, by this Python's tables.

    Those with a non-zero combining class, those NFC maps to something else (quick check No),
    and those that can be the second of a composing pair (quick check Maybe, Hangul vowel
    and final jamo included). Every other code point is stable. About 0.2 s, once a process.
    """
    nfc = unicodedata.normalize
    out: set[int] = set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))  # Hangul V, T
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        char = chr(cp)
        if unicodedata.combining(char) or nfc("NFC", char) != char:
            out.add(cp)
        decomposition = unicodedata.decomposition(char)
        if decomposition and not decomposition.startswith("<"):
            parts = decomposition.split()
            if len(parts) == 2:
                first, second = (chr(int(p, 16)) for p in parts)
                if nfc("NFC", first + second) == char:
                    out.add(ord(second))
    return frozenset(out)


def _ranges(codepoints: frozenset[int]) -> list[tuple[int, int]]:
    ranges: list[list[int]] = []
    for cp in sorted(codepoints):
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return [(a, b) for a, b in ranges]


@cache
def _span_start_pattern() -> str:
    """Regex (Rust syntax) whose first match starts where a row's span to clean starts:
    one character before the first character that cleaning can change (or at it, at 0)."""
    def esc(cp: int) -> str:
        return f"\\x{{{cp:x}}}"

    special = [(0x00, 0x08), (0x0B, 0x1F), (0x7F, 0x9F), (0xFEFF, 0xFEFF),
               *_ranges(nfc_unstable_codepoints())]
    body = "".join(esc(a) if a == b else f"{esc(a)}-{esc(b)}" for a, b in special)
    return f"(?s).?[{body}]"


def _flagged_rows(arr: pa.LargeStringArray) -> tuple[np.ndarray, np.ndarray]:
    """Rows holding a byte outside printable ASCII, tab and newline, and per such row the
    offset of the last one. After that byte a row is plain ASCII, so nothing there changes."""
    offsets = np.frombuffer(arr.buffers()[1], np.int64, count=len(arr) + 1, offset=arr.offset * 8)
    lo, hi = int(offsets[0]), int(offsets[-1])
    if hi == lo:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    data = np.frombuffer(arr.buffers()[2], np.uint8)[lo:hi]
    pos = np.flatnonzero((data - np.uint8(32)) >= 95)  # < 0x20 or >= 0x7f
    byte = data[pos]
    pos = pos[(byte != 9) & (byte != 10)] + lo
    if not len(pos):
        return np.empty(0, np.int64), np.empty(0, np.int64)
    rows = np.searchsorted(offsets, pos, side="right") - 1
    last = np.r_[rows[1:] != rows[:-1], True]
    return rows[last], pos[last] - offsets[rows[last]]


def clean_texts(texts: pa.Array | pa.ChunkedArray) -> pa.LargeStringArray:
    """``clean_text`` over a column of strings (no nulls), element by element identical."""
    arr = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
    arr = arr.cast(pa.large_string())
    if arr.null_count:
        raise ValueError("clean_texts: the column has nulls; quarantine them first")
    rows, last = _flagged_rows(arr)
    series = pl.Series("t", arr)
    if len(rows):
        sub = pl.DataFrame({"t": series.gather(rows), "last": last,
                            "n": series.gather(rows).str.len_bytes().cast(pl.Int64)})
        sub = sub.with_columns(start=pl.col("t").str.find(_span_start_pattern()).cast(pl.Int64))
        sub = sub.with_columns(end=pl.min_horizontal(pl.col("last") + 2, pl.col("n")))
        changing = sub["start"].is_not_null().to_numpy()
        sub = sub.filter(pl.col("start").is_not_null())
        if sub.height:
            raw = pl.col("t").cast(pl.Binary)
            sub = sub.with_columns(span=raw.bin.slice(pl.col("start"),
                                                     pl.col("end") - pl.col("start"))
                                   .cast(pl.String))
            distinct = sub["span"].unique().to_list()
            cleaned = dict(zip(distinct, map(_clean_span, distinct), strict=True))
            sub = sub.with_columns(clean=pl.col("span").replace_strict(
                cleaned, return_dtype=pl.String))
            spliced = sub.select(pl.concat_str([
                raw.bin.head(pl.col("start")).cast(pl.String), pl.col("clean"),
                raw.bin.slice(pl.col("end")).cast(pl.String)])).to_series()
            series = series.scatter(rows[changing], spliced)
    out = series.str.strip_chars().to_arrow()
    out = out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out
    return out.cast(pa.large_string())
