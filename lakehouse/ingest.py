"""Ingest of one shard: clean, identify, de-duplicate, and quarantine what cannot be used.

Pure function over the rows a reader yields, so it is tested without files or Dagster. Every
raw row ends in exactly one of three places: the documents, the duplicates, or the
quarantine; ``rows_in = docs_out + duplicates + quarantined`` always holds.

The work is done on columns: cleaning (``normalize.clean_texts``), the length checks, and
de-duplication are column operations; only the two hashes behind ``content_hash`` and
``doc_id`` run per row (BLAKE2b has no column kernel), over the Arrow buffers without
building Python strings, while a second thread reads, parses and cleans the next block. The
result is the one the row-by-row definition gives (first occurrence of each cleaned text
kept; a row whose id is already taken by a kept row with other text quarantined), byte for
byte.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse import tables
from lakehouse.normalize import Reason, clean_text, clean_texts
from lakehouse.readers import BATCH, RawRow, RowBatch

EXCERPT_CHARS = 200
PART_ROWS = 8192  # rows gathered before a part is cleaned (small reader batches are merged)

_SEP = b"\x1f"  # the unit separator of lakehouse.ids._digest
_PARTS = pa.schema([("seq", pa.int64()), *BATCH])  # seq: position in the reader's order
_KEPT = pa.schema([*_PARTS, ("n_chars", pa.int64()), ("content_hash", pa.string()),
                   ("doc_id", pa.string())])
_QUARANTINE_PART = pa.schema([("seq", pa.int64()), ("row_index", pa.int64()),
                              ("source_id", pa.string()), ("field", pa.string()),
                              ("reason", pa.string()), ("detail", pa.string()),
                              ("excerpt", pa.string())])


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


@dataclass
class _Part:
    """A run of rows, cleaned and length-checked: what may become documents, and the rest."""

    kept: pa.Table  # seq, row_index, source_id, text (cleaned), n_chars
    rows_in: int  # raw rows the part stands for, counted as read
    quarantine: list[pa.Table] = field(default_factory=list)  # _QUARANTINE_PART tables


def _quarantine_rows(records: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(records, schema=_QUARANTINE_PART)


def _bad_record(seq: int, row: RawRow, reason: Reason, field: str, detail: str,
                excerpt: str = "") -> dict:
    return {"seq": seq, "row_index": row.row_index, "source_id": row.source_id,
            "field": field, "reason": str(reason), "detail": detail,
            "excerpt": excerpt[:EXCERPT_CHARS]}


def _python_rows(rows: list[tuple[int, RawRow]], bad: list[dict]) -> pa.Table:
    """Good rows from a row-by-row reader path as a part table.

    Text with lone surrogates (``json`` decodes a ``\\ud800`` escape to one) cannot enter an
    Arrow column; it is cleaned here, which removes them, and cleaning again later is a no-op.
    """
    seqs, indexes, ids, texts = [], [], [], []
    for seq, row in rows:
        text = row.text or ""
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            cleaned = clean_text(text)
            if not cleaned:
                bad.append(_bad_record(seq, row, Reason.EMPTY_AFTER_CLEANING, "text",
                                       f"{len(text)} characters before cleaning, none after"))
                continue
            text = cleaned
        seqs.append(seq)
        indexes.append(row.row_index)
        ids.append(row.source_id)
        texts.append(text)
    return pa.Table.from_arrays([pa.array(seqs, pa.int64()), pa.array(indexes, pa.int64()),
                                 pa.array(ids, pa.string()), pa.array(texts, pa.large_string())],
                                schema=_PARTS)


def _check(table: pa.Table, bad: list[dict], rows_in: int, max_chars: int) -> _Part:
    """Clean a part's text and move empty and over-long rows to the quarantine."""
    part = _Part(table.slice(0, 0).append_column("n_chars", pa.array([], pa.int64())), rows_in)
    if bad:
        part.quarantine.append(_quarantine_rows(bad))
    if not table.num_rows:
        return part
    raw = table.column("text").combine_chunks()
    text = clean_texts(raw)
    n_chars = pc.utf8_length(text).cast(pa.int64())
    table = table.set_column(3, "text", text).append_column("n_chars", n_chars)
    empty = pc.equal(n_chars, 0)
    long = pc.greater(n_chars, max_chars)
    if pc.any(empty).as_py():
        rows = pl.from_arrow(table.filter(empty)).with_columns(
            raw=pl.Series(pc.utf8_length(raw.filter(empty))))
        part.quarantine.append(_quarantine_frame(rows, Reason.EMPTY_AFTER_CLEANING, "text",
                                                 pl.format("{} characters before cleaning, "
                                                           "none after", pl.col("raw")),
                                                 pl.lit("")))
    if pc.any(long).as_py():
        rows = pl.from_arrow(table.filter(long))
        part.quarantine.append(_quarantine_frame(
            rows, Reason.TOO_LONG, "text",
            pl.format("{} characters > max_chars {}", pl.col("n_chars"), pl.lit(max_chars)),
            pl.col("text").str.slice(0, EXCERPT_CHARS)))
    part.kept = table.filter(pc.invert(pc.or_(empty, long)))
    return part


def _quarantine_frame(rows: pl.DataFrame, reason: Reason, field: str, detail: pl.Expr,
                      excerpt: pl.Expr) -> pa.Table:
    out = rows.select(pl.col("seq"), pl.col("row_index"), pl.col("source_id"),
                      pl.lit(field).alias("field"), pl.lit(str(reason)).alias("reason"),
                      detail.alias("detail"), excerpt.alias("excerpt"))
    return out.to_arrow().cast(_QUARANTINE_PART)


def _parts(rows: Iterable[RawRow | RowBatch], max_chars: int) -> Iterator[_Part]:
    """Group the reader's output into parts of about PART_ROWS rows, numbered in order."""
    seq = 0
    tables_: list[pa.Table] = []
    python: list[tuple[int, RawRow]] = []
    bad: list[dict] = []
    size = 0

    def flush() -> _Part:
        nonlocal tables_, python, bad, size
        if python:
            tables_.append(_python_rows(python, bad))
        table = (pa.concat_tables(tables_) if tables_ else _PARTS.empty_table())
        part = _check(table, bad, size, max_chars)
        tables_, python, bad, size = [], [], [], 0
        return part

    for item in rows:
        if isinstance(item, RowBatch):
            if python:
                tables_.append(_python_rows(python, bad))
                python = []
            n = item.num_rows
            seqs = pa.array(np.arange(seq, seq + n, dtype=np.int64))
            tables_.append(item.table.cast(BATCH).add_column(0, "seq", seqs))
            seq += n
            size += n
        else:
            if item.reason is not None:
                bad.append(_bad_record(seq, item, item.reason, item.field, item.detail))
            else:
                python.append((seq, item))
            seq += 1
            size += 1
        if size >= PART_ROWS:
            yield flush()
    if size or bad:
        yield flush()


def _prefetch(items: Iterator[_Part], depth: int = 2) -> Iterator[_Part]:
    """Run ``items`` in a worker thread, ``depth`` ahead (Arrow and Polars release the GIL,
    so reading and cleaning overlap the per-row hashing of the main thread)."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(message: tuple) -> bool:
        while not stop.is_set():
            try:
                slots.put(message, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("done", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put(("error", exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=work, name="ingest-read", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = slots.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()
        worker.join()


def _hashes(prefix: bytes, values: pa.Array, size: int) -> list[str]:
    """``ids._digest`` of (prefix parts..., value) for each value, read from Arrow buffers."""
    values = values.cast(pa.large_string())
    offsets = np.frombuffer(values.buffers()[1], np.int64, count=len(values) + 1,
                            offset=values.offset * 8).tolist()
    data = memoryview(values.buffers()[2] or b"")
    base = hashlib.blake2b(prefix, digest_size=size)
    out = []
    for start, end in zip(offsets[:-1], offsets[1:], strict=True):
        h = base.copy()
        h.update(data[start:end])
        h.update(_SEP)
        out.append(h.hexdigest())
    return out


def _with_ids(kept: pa.Table, corpus: str) -> pa.Table:
    """Add content_hash and doc_id (``ids.content_hash`` and ``ids.doc_id``)."""
    text = kept.column("text").combine_chunks()
    chash = _hashes(b"content" + _SEP, text, 16)
    sid = kept.column("source_id").combine_chunks()
    has_id = pc.fill_null(pc.greater(pc.utf8_length(sid), 0), False)
    corpus_part = corpus.encode("utf-8") + _SEP
    if pc.all(has_id).as_py():
        dids = _hashes(b"id" + _SEP + corpus_part, sid, 8)
    else:
        by_id = iter(_hashes(b"id" + _SEP + corpus_part, sid.filter(has_id), 8))
        by_text = iter(_hashes(b"text" + _SEP + corpus_part,
                               text.filter(pc.invert(has_id)), 8))
        dids = [next(by_id) if flag else next(by_text) for flag in has_id.to_pylist()]
    return (kept.append_column("content_hash", pa.array(chash, pa.string()))
            .append_column("doc_id", pa.array(dids, pa.string())))


def _resolve(kept: pl.DataFrame) -> tuple[pl.Series, pl.Series]:
    """Per kept row: is it a document, and (for the rest) which kept doc_id it duplicates.

    The first row of each content hash is a document unless a document already holds its
    doc_id (a reused source id with other text: quarantined). When the first rows' doc_ids
    are all distinct that never happens and the answer is one column operation; otherwise
    the rows are walked in order as the definition says.
    """
    first = kept["content_hash"].is_first_distinct()
    if not kept.filter(first)["doc_id"].is_duplicated().any():
        owner = kept.filter(first).select("content_hash", pl.col("doc_id").alias("owner"))
        dup_of = kept.join(owner, on="content_hash", how="left",
                           maintain_order="left")["owner"]
        return first, dup_of.set(first, None)
    by_hash: dict[str, str] = {}
    by_id: set[str] = set()
    is_doc, dup_of = [], []
    for chash, did in zip(kept["content_hash"].to_list(), kept["doc_id"].to_list(),
                          strict=True):
        if chash in by_hash:
            is_doc.append(False)
            dup_of.append(by_hash[chash])
        elif did in by_id:
            is_doc.append(False)
            dup_of.append(None)
        else:
            by_hash[chash] = did
            by_id.add(did)
            is_doc.append(True)
            dup_of.append(None)
    return pl.Series(is_doc, dtype=pl.Boolean), pl.Series(dup_of, dtype=pl.String)


def _column(value: str, n: int) -> pa.Array:
    return pa.array([value] * n, pa.string())


def ingest_rows(rows: Iterable[RawRow | RowBatch], corpus: str, shard: str, source_uri: str,
                max_chars: int) -> IngestResult:
    """Turn raw rows into documents, keeping the first of each exact duplicate."""
    kept_parts: list[pa.Table] = []
    bad_parts: list[pa.Table] = []
    rows_in = 0
    for part in _prefetch(_parts(rows, max_chars)):
        rows_in += part.rows_in
        bad_parts.extend(part.quarantine)
        if part.kept.num_rows:
            kept_parts.append(_with_ids(part.kept, corpus))
    kept = pa.concat_tables(kept_parts) if kept_parts else _KEPT.empty_table()
    is_doc, dup_of = _resolve(pl.from_arrow(kept.select(["content_hash", "doc_id"])))
    docs = kept.filter(is_doc.to_arrow())
    dups = kept.filter(dup_of.is_not_null().to_arrow())
    taken = kept.filter((~is_doc & dup_of.is_null()).to_arrow())
    if taken.num_rows:
        bad_parts.append(_quarantine_rows([
            {"seq": r["seq"], "row_index": r["row_index"], "source_id": r["source_id"],
             "field": "id", "reason": str(Reason.DUPLICATE_ID),
             "detail": f"id {r['source_id']!r} already used by a row with different text",
             "excerpt": r["text"][:EXCERPT_CHARS]} for r in taken.to_pylist()]))
    bad = (pa.concat_tables(bad_parts) if bad_parts else _QUARANTINE_PART.empty_table())
    bad = bad.sort_by("seq")

    docs_table = pa.table({
        "doc_id": docs["doc_id"], "corpus": _column(corpus, docs.num_rows),
        "shard": _column(shard, docs.num_rows), "row_index": docs["row_index"],
        "source_id": docs["source_id"], "text": docs["text"], "n_chars": docs["n_chars"],
        "content_hash": docs["content_hash"]})
    dups_table = pa.table({
        "corpus": _column(corpus, dups.num_rows), "shard": _column(shard, dups.num_rows),
        "row_index": dups["row_index"], "source_id": dups["source_id"],
        "duplicate_of": dup_of.drop_nulls().to_arrow(), "content_hash": dups["content_hash"]})
    bad_table = pa.table({
        "corpus": _column(corpus, bad.num_rows), "shard": _column(shard, bad.num_rows),
        "source_uri": _column(source_uri, bad.num_rows), "row_index": bad["row_index"],
        "source_id": bad["source_id"], "field": bad["field"], "reason": bad["reason"],
        "detail": bad["detail"], "excerpt": bad["excerpt"]})
    return IngestResult(_exact(docs_table, tables.DOCS), _exact(bad_table, tables.QUARANTINE),
                        _exact(dups_table, tables.DUPLICATES), rows_in)


def _exact(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """The table with exactly ``schema``'s types, one chunk per column (as from_pylist)."""
    return table.cast(schema).combine_chunks()


def shard_stats(result: IngestResult, corpus: str, shard: str, source_uri: str,
                source_sha256: str, source_bytes: int, max_chars: int) -> pa.Table:
    """One-row table describing an ingest run; read by the count check and the catalog."""
    chars = pc.sum(result.docs["n_chars"]).as_py() or 0
    row = {"corpus": corpus, "shard": shard, "source_uri": source_uri,
           "source_sha256": source_sha256, "source_bytes": source_bytes,
           **result.counts, "chars_out": chars, "max_chars": max_chars}
    return tables.from_rows([row], tables.SHARD_STATS)
