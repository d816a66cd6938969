"""Arrow schemas of the lake's tables: the data contracts of ARCHITECTURE.md, in code."""

from __future__ import annotations

import pyarrow as pa

DOCS = pa.schema([
    ("doc_id", pa.string()),
    ("corpus", pa.string()),
    ("shard", pa.string()),
    ("row_index", pa.int64()),
    ("source_id", pa.string()),
    ("text", pa.large_string()),
    ("n_chars", pa.int64()),
    ("content_hash", pa.string()),
])

QUARANTINE = pa.schema([
    ("corpus", pa.string()),
    ("shard", pa.string()),
    ("source_uri", pa.string()),
    ("row_index", pa.int64()),
    ("source_id", pa.string()),
    ("field", pa.string()),
    ("reason", pa.string()),
    ("detail", pa.string()),
    ("excerpt", pa.string()),
])

DUPLICATES = pa.schema([
    ("corpus", pa.string()),
    ("shard", pa.string()),
    ("row_index", pa.int64()),
    ("source_id", pa.string()),
    ("duplicate_of", pa.string()),  # doc_id of the first occurrence that was kept
    ("content_hash", pa.string()),
])

SHARD_STATS = pa.schema([
    ("corpus", pa.string()),
    ("shard", pa.string()),
    ("source_uri", pa.string()),
    ("source_sha256", pa.string()),
    ("source_bytes", pa.int64()),
    ("rows_in", pa.int64()),
    ("docs_out", pa.int64()),
    ("duplicates", pa.int64()),
    ("quarantined", pa.int64()),
    ("chars_out", pa.int64()),
    ("max_chars", pa.int64()),
])

GROUND_TRUTH = pa.schema([
    ("root_doc_id", pa.string()),
    ("source_doc_id", pa.string()),
    ("kind", pa.string()),  # name | place | code | number
    ("surface", pa.string()),  # the planted string as it appears in the root
    ("char_start", pa.int64()),  # span in the root's text, [start, end)
    ("char_end", pa.int64()),
])


def from_rows(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Build a table with exactly ``schema`` (an empty list gives an empty table, not an error)."""
    return pa.Table.from_pylist(rows, schema=schema)
