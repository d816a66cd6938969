"""Ingest of one shard: clean, identify, de-duplicate, and quarantine what cannot be used.

Pure function over an iterator of raw rows, so it is tested without files or Dagster. Every
raw row ends in exactly one of three places: the documents, the duplicates, or the
quarantine; ``rows_in = docs_out + duplicates + quarantined`` always holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse import tables
from lakehouse.ids import content_hash, doc_id
from lakehouse.normalize import Reason, clean_text
from lakehouse.readers import RawRow

EXCERPT_CHARS = 200


@dataclass
class IngestResult:
    docs: pa.Table
    quarantine: pa.Table
    duplicates: pa.Table
    rows_in: int

    @property
    def counts(self) -> dict[str, int]:
        return {"rows_in": self.rows_in, "docs_out": self.docs.num_rows,
                "duplicates": self.duplicates.num_rows, "quarantined": self.quarantine.num_rows}


def ingest_rows(rows: Iterable[RawRow], corpus: str, shard: str, source_uri: str,
                max_chars: int) -> IngestResult:
    """Turn raw rows into documents, keeping the first of each exact duplicate."""
    docs: list[dict] = []
    bad: list[dict] = []
    dups: list[dict] = []
    by_hash: dict[str, str] = {}  # content hash -> doc_id kept
    by_id: dict[str, str] = {}  # doc_id -> content hash kept
    rows_in = 0

    def quarantine(row: RawRow, reason: Reason, field: str, detail: str, excerpt: str) -> None:
        bad.append({"corpus": corpus, "shard": shard, "source_uri": source_uri,
                    "row_index": row.row_index, "source_id": row.source_id, "field": field,
                    "reason": str(reason), "detail": detail,
                    "excerpt": excerpt[:EXCERPT_CHARS]})

    for row in rows:
        rows_in += 1
        if row.reason is not None:
            quarantine(row, row.reason, row.field, row.detail, "")
            continue
        text = clean_text(row.text or "")
        if not text:
            quarantine(row, Reason.EMPTY_AFTER_CLEANING, "text",
                       f"{len(row.text or '')} characters before cleaning, none after", "")
            continue
        if len(text) > max_chars:
            quarantine(row, Reason.TOO_LONG, "text",
                       f"{len(text)} characters > max_chars {max_chars}", text)
            continue
        chash = content_hash(text)
        did = doc_id(corpus, row.source_id, text)
        if chash in by_hash:
            dups.append({"corpus": corpus, "shard": shard, "row_index": row.row_index,
                         "source_id": row.source_id, "duplicate_of": by_hash[chash],
                         "content_hash": chash})
            continue
        if did in by_id:
            quarantine(row, Reason.DUPLICATE_ID, "id",
                       f"id {row.source_id!r} already used by a row with different text", text)
            continue
        by_hash[chash] = did
        by_id[did] = chash
        docs.append({"doc_id": did, "corpus": corpus, "shard": shard,
                     "row_index": row.row_index, "source_id": row.source_id, "text": text,
                     "n_chars": len(text), "content_hash": chash})
    return IngestResult(tables.from_rows(docs, tables.DOCS),
                        tables.from_rows(bad, tables.QUARANTINE),
                        tables.from_rows(dups, tables.DUPLICATES), rows_in)


def shard_stats(result: IngestResult, corpus: str, shard: str, source_uri: str,
                source_sha256: str, source_bytes: int, max_chars: int) -> pa.Table:
    """One-row table describing an ingest run; read by the count check and the catalog."""
    chars = pc.sum(result.docs["n_chars"]).as_py() or 0
    row = {"corpus": corpus, "shard": shard, "source_uri": source_uri,
           "source_sha256": source_sha256, "source_bytes": source_bytes,
           **result.counts, "chars_out": chars, "max_chars": max_chars}
    return tables.from_rows([row], tables.SHARD_STATS)
