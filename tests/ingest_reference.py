"""The row-by-row ingest as it was before the columnar rewrite: the tests' definition of the
right answer. It reads a shard whole and handles one row at a time (too slow for corpora,
exact by construction); the columnar path must give the same tables, byte for byte."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse import tables
from lakehouse.corpora import CorpusSpec
from lakehouse.ids import content_hash, doc_id
from lakehouse.ingest import EXCERPT_CHARS, IngestResult
from lakehouse.normalize import Reason
from lakehouse.readers import RawRow

_STRIP = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufeff]")


def clean_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _STRIP.sub("", text)
    return unicodedata.normalize("NFC", text).strip()


def _source_id(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _row_from_record(index: int, record: object, spec: CorpusSpec) -> RawRow:
    if not isinstance(record, dict):
        return RawRow(index, None, None, Reason.MALFORMED_JSON, "",
                      f"expected a JSON object, got {type(record).__name__}")
    sid = _source_id(record.get(spec.id_column)) if spec.id_column else None
    if spec.text_column not in record or record[spec.text_column] is None:
        return RawRow(index, sid, None, Reason.MISSING_TEXT, spec.text_column,
                      f"field {spec.text_column!r} is missing or null")
    text = record[spec.text_column]
    if not isinstance(text, str):
        return RawRow(index, sid, None, Reason.NON_STRING_TEXT, spec.text_column,
                      f"field {spec.text_column!r} is {type(text).__name__}, not a string")
    return RawRow(index, sid, text)


def jsonl_rows(data: bytes, spec: CorpusSpec) -> Iterator[RawRow]:
    """The rows of a (decompressed) JSONL shard."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for index, raw in enumerate(lines):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield RawRow(index, None, None, Reason.UNDECODABLE_BYTES, "",
                         f"line {index + 1}: {exc.reason} at byte {exc.start}")
            continue
        if not line.strip():
            yield RawRow(index, None, None, Reason.MALFORMED_JSON, "",
                         f"line {index + 1}: blank line")
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield RawRow(index, None, None, Reason.MALFORMED_JSON, "",
                         f"line {index + 1}: {exc.msg} (column {exc.colno})")
            continue
        yield _row_from_record(index, record, spec)


def parquet_rows(uri: str, spec: CorpusSpec) -> Iterator[RawRow]:
    with fsspec.open(uri, "rb") as fh:
        pf = pq.ParquetFile(fh)
        columns = [spec.text_column] + ([spec.id_column] if spec.id_column else [])
        offset = 0
        for batch in pf.iter_batches(batch_size=4096, columns=columns):
            ids = ([_source_id(v) for v in batch.column(spec.id_column).to_pylist()]
                   if spec.id_column else [None] * batch.num_rows)
            column = batch.column(spec.text_column)
            kind = column.type
            for i, value in enumerate(column.to_pylist()):
                index, sid = offset + i, ids[i]
                if value is None:
                    yield RawRow(index, sid, None, Reason.MISSING_TEXT, spec.text_column,
                                 f"field {spec.text_column!r} is null")
                elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
                    try:
                        yield RawRow(index, sid, value.decode("utf-8"))
                    except UnicodeDecodeError as exc:
                        yield RawRow(index, sid, None, Reason.UNDECODABLE_BYTES,
                                     spec.text_column, f"{exc.reason} at byte {exc.start}")
                elif isinstance(value, str):
                    yield RawRow(index, sid, value)
                else:
                    yield RawRow(index, sid, None, Reason.NON_STRING_TEXT, spec.text_column,
                                 f"field {spec.text_column!r} has type {kind}, not a string")
            offset += batch.num_rows


def ingest_rows(rows, corpus: str, shard: str, source_uri: str, max_chars: int) -> IngestResult:
    docs: list[dict] = []
    bad: list[dict] = []
    dups: list[dict] = []
    by_hash: dict[str, str] = {}
    by_id: dict[str, str] = {}
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
