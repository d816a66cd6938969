"""Readers for raw corpus shards: Parquet and JSONL, local or any fsspec URL.

A reader yields one ``RawRow`` per record, good or bad: row-level problems (a malformed JSON
line, bytes that are not UTF-8, a missing or non-string text field) are reported on the row so
ingest can quarantine them. A shard that cannot be opened or parsed at all raises
``ShardReadError`` naming the file, so only that shard's partition fails.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.corpora import CorpusSpec
from lakehouse.normalize import Reason


class ShardReadError(RuntimeError):
    """The shard file as a whole cannot be read; the message names the file."""


@dataclass(frozen=True)
class RawRow:
    row_index: int  # 0-based record number in the shard (JSONL: line number - 1)
    source_id: str | None
    text: str | None  # set when the row is good so far
    reason: Reason | None = None  # set when the row is already known to be bad
    field: str = ""
    detail: str = ""


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


def read_jsonl(uri: str, spec: CorpusSpec) -> Iterator[RawRow]:
    """One record per line; a final newline does not make an extra record."""
    try:
        with fsspec.open(uri, "rb") as fh:
            data = fh.read()
    except Exception as exc:  # noqa: BLE001 - any open/read failure is a shard failure
        raise ShardReadError(f"{uri}: cannot read shard: {exc}") from exc
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


def _text_values(column: pa.ChunkedArray | pa.Array, offset: int, spec: CorpusSpec,
                 ids: list[str | None]) -> Iterator[RawRow]:
    kind = column.type
    values = column.to_pylist()
    for i, value in enumerate(values):
        index = offset + i
        sid = ids[i]
        if value is None:
            yield RawRow(index, sid, None, Reason.MISSING_TEXT, spec.text_column,
                         f"field {spec.text_column!r} is null")
        elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            try:
                yield RawRow(index, sid, value.decode("utf-8"))
            except UnicodeDecodeError as exc:
                yield RawRow(index, sid, None, Reason.UNDECODABLE_BYTES, spec.text_column,
                             f"{exc.reason} at byte {exc.start}")
        elif isinstance(value, str):
            yield RawRow(index, sid, value)
        else:
            yield RawRow(index, sid, None, Reason.NON_STRING_TEXT, spec.text_column,
                         f"field {spec.text_column!r} has type {kind}, not a string")


def read_parquet_shard(uri: str, spec: CorpusSpec) -> Iterator[RawRow]:
    """Stream a Parquet shard by record batch; schema problems fail the shard by name."""
    try:
        fh = fsspec.open(uri, "rb").open()
        pf = pq.ParquetFile(fh)
    except Exception as exc:  # noqa: BLE001
        raise ShardReadError(f"{uri}: not a readable Parquet file: {exc}") from exc
    try:
        names = pf.schema_arrow.names
        if spec.text_column not in names:
            raise ShardReadError(f"{uri}: text column {spec.text_column!r} not found "
                                 f"(columns: {', '.join(names)})")
        columns = [spec.text_column]
        if spec.id_column:
            if spec.id_column not in names:
                raise ShardReadError(f"{uri}: id column {spec.id_column!r} not found "
                                     f"(columns: {', '.join(names)}); set id_column: null "
                                     "to derive ids from text")
            columns.append(spec.id_column)
        offset = 0
        try:
            batches = pf.iter_batches(batch_size=4096, columns=columns)
            for batch in batches:
                ids = ([_source_id(v) for v in batch.column(spec.id_column).to_pylist()]
                       if spec.id_column else [None] * batch.num_rows)
                yield from _text_values(batch.column(spec.text_column), offset, spec, ids)
                offset += batch.num_rows
        except ShardReadError:
            raise
        except Exception as exc:  # noqa: BLE001 - corrupt pages surface here
            raise ShardReadError(f"{uri}: corrupt Parquet data after row {offset}: {exc}") \
                from exc
    finally:
        fh.close()


def read_shard(uri: str, spec: CorpusSpec) -> Iterator[RawRow]:
    """Dispatch on the corpus format."""
    if spec.format == "jsonl":
        return read_jsonl(uri, spec)
    return read_parquet_shard(uri, spec)
