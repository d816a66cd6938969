"""Readers for raw corpus shards: Parquet and JSONL (plain or compressed), local or any fsspec
URL, streamed so that a shard is never held in memory whole.

A reader yields, in file order, ``RowBatch`` tables of rows whose text field is a string and
``RawRow`` records for the rest: row-level problems (a malformed JSON line, bytes that are not
UTF-8, a missing or non-string text field) are reported on the row so ingest can quarantine
them. A shard that cannot be opened, decompressed or parsed at all raises ``ShardReadError``
naming the file (and the line, where known), so only that shard's partition fails.

JSONL is read in blocks of whole lines. A block is parsed by Arrow's JSON reader when that
gives exactly what ``json.loads`` gives line by line: the bytes are UTF-8, every line starts
with ``{`` and yields one record, and the text and id fields are strings (Arrow rejects a
number or a duplicated key there instead of converting it). Otherwise the block is split at
the first line that broke a condition (Arrow's error names its row), that line is parsed with
``json`` (the definition of each row's outcome), and the rest goes on the same way, so a bad
row costs about one extra parse of the good lines before it.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from fsspec.utils import infer_compression

from lakehouse.corpora import CorpusSpec
from lakehouse.normalize import Reason

BLOCK_BYTES = 8 << 20  # decompressed JSONL read per step (whole lines are parsed together)
WINDOW_LINES = 512  # a block Arrow refused is worked through in windows of this many lines
SMALL_BLOCK_LINES = 16  # at most this many lines, a failing block is parsed line by line

# What a row batch holds: the record number, the source id, the raw (uncleaned) text.
BATCH = pa.schema([("row_index", pa.int64()), ("source_id", pa.string()),
                   ("text", pa.large_string())])

# Leading bytes of compressed data, to name the problem when a file's name does not say.
_MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"BZh": "bz2",
          b"\xfd7zXZ\x00": "xz"}


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


@dataclass(frozen=True)
class RowBatch:
    """Consecutive good-so-far rows as columns (schema ``BATCH``); cleaning comes later."""

    table: pa.Table

    @property
    def num_rows(self) -> int:
        return self.table.num_rows


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


def parse_jsonl_line(index: int, raw: bytes, spec: CorpusSpec) -> RawRow:
    """One JSONL line (without its newline) -> its row: the reference for every fast path."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RawRow(index, None, None, Reason.UNDECODABLE_BYTES, "",
                      f"line {index + 1}: {exc.reason} at byte {exc.start}")
    if not line.strip():
        return RawRow(index, None, None, Reason.MALFORMED_JSON, "",
                      f"line {index + 1}: blank line")
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return RawRow(index, None, None, Reason.MALFORMED_JSON, "",
                      f"line {index + 1}: {exc.msg} (column {exc.colno})")
    return _row_from_record(index, record, spec)


def _lines(block: bytes) -> list[bytes]:
    lines = block.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def _batch(first_row: int, ids: pa.Array | None, texts: pa.Array) -> RowBatch:
    n = len(texts)
    rows = pa.array(np.arange(first_row, first_row + n, dtype=np.int64))
    ids = pa.nulls(n, pa.string()) if ids is None else ids.cast(pa.string())
    return RowBatch(pa.Table.from_arrays([rows, ids, texts.cast(pa.large_string())],
                                         schema=BATCH))


_ROW_IN_ERROR = re.compile(r" in row (\d+)")


def _fast_jsonl(block: bytes, starts: np.ndarray, spec: CorpusSpec
                ) -> tuple[pa.Table | None, int | None]:
    """Arrow's parse of a block of whole lines, or None where it could differ from json's.

    With None comes, where known, the first line that broke a condition (so the caller can
    split there instead of halving): its index in the block.
    """
    n_lines = len(starts)
    view = np.frombuffer(block, np.uint8)
    not_object = np.flatnonzero(view[starts] != 0x7B)  # lines that do not start with "{"
    if len(not_object):
        return None, int(not_object[0])
    try:
        pa.array([block], pa.large_binary()).cast(pa.large_string())  # UTF-8 check
    except pa.ArrowInvalid:
        try:
            block.decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, int(np.searchsorted(starts, exc.start, side="right") - 1)
        return None, None
    kinds = [pa.string(), pa.int64()] if spec.id_column else [None]
    for id_type in kinds:
        fields = [(spec.text_column, pa.string())]
        if id_type is not None:
            fields.append((spec.id_column, id_type))
        options = pa_json.ParseOptions(explicit_schema=pa.schema(fields),
                                       unexpected_field_behavior="ignore")
        try:
            table = pa_json.read_json(
                io.BytesIO(block), parse_options=options,
                read_options=pa_json.ReadOptions(use_threads=False,
                                                  block_size=len(block) + 1))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            if id_type == pa.string() and f"Column(/{spec.id_column})" in str(exc):
                continue  # numeric ids: try them as integers
            row = _ROW_IN_ERROR.search(str(exc))
            return None, (int(row.group(1)) if row and int(row.group(1)) < n_lines else None)
        if table.num_rows == n_lines:
            return table, None
        return None, None  # a line held more than one value
    return None, None


def _fast_rows(table: pa.Table, first_row: int, spec: CorpusSpec) -> Iterator[RowBatch | RawRow]:
    """The rows of a block Arrow parsed: batches, and the rows whose text is missing."""
    text = table.column(spec.text_column).combine_chunks()
    ids = table.column(spec.id_column).combine_chunks() if spec.id_column else None
    start = 0
    missing = np.flatnonzero(~np.asarray(text.is_valid())) if text.null_count else []
    for i in (int(i) for i in missing):
        if i > start:
            yield _batch(first_row + start, None if ids is None else ids[start:i],
                         text[start:i])
        sid = None if ids is None else ids[i].as_py()
        yield RawRow(first_row + i, None if sid is None else str(sid), None,
                     Reason.MISSING_TEXT, spec.text_column,
                     f"field {spec.text_column!r} is missing or null")
        start = i + 1
    if start < len(text):
        yield _batch(first_row + start, None if ids is None else ids[start:], text[start:])


def _starts(block: bytes) -> np.ndarray:
    view = np.frombuffer(block, np.uint8)
    return np.r_[0, np.flatnonzero(view[:-1] == 10) + 1]


def _jsonl_block(block: bytes, first_row: int, spec: CorpusSpec) -> Iterator[RowBatch | RawRow]:
    """Rows of a block of whole lines, numbered from ``first_row``.

    Arrow takes the block if it can; otherwise the block is worked through in windows of
    WINDOW_LINES lines, each split at the first line that broke a condition (that line is
    parsed with ``json``), or halved when that line is not known.
    """
    if not block:
        return
    starts = _starts(block)
    table, culprit = _fast_jsonl(block, starts, spec)
    if table is not None:
        yield from _fast_rows(table, first_row, spec)
        return
    for w in range(0, len(starts), WINDOW_LINES):
        lo = int(starts[w])
        hi = int(starts[w + WINDOW_LINES]) if w + WINDOW_LINES < len(starts) else len(block)
        known = culprit if w == 0 and culprit is not None and culprit < WINDOW_LINES else None
        yield from _jsonl_window(block[lo:hi], first_row + w, spec, known)


def _jsonl_window(block: bytes, first_row: int, spec: CorpusSpec, culprit: int | None
                  ) -> Iterator[RowBatch | RawRow]:
    table = None
    tried = culprit is not None  # the caller's failed attempt covered this window's start
    while block:
        starts = _starts(block)
        if not tried:
            table, culprit = _fast_jsonl(block, starts, spec)
        tried = False
        if table is not None:
            yield from _fast_rows(table, first_row, spec)
            return
        if len(starts) <= SMALL_BLOCK_LINES:
            for offset, raw in enumerate(_lines(block)):
                yield parse_jsonl_line(first_row + offset, raw, spec)
            return
        if culprit is None or culprit >= len(starts):
            middle = len(starts) // 2
            yield from _jsonl_window(block[:int(starts[middle])], first_row, spec, None)
            block, first_row = block[int(starts[middle]):], first_row + middle
            continue
        line_start = int(starts[culprit])
        line_end = int(starts[culprit + 1]) if culprit + 1 < len(starts) else len(block)
        if culprit:
            yield from _jsonl_window(block[:line_start], first_row, spec, None)
        yield parse_jsonl_line(first_row + culprit,
                               block[line_start:line_end].removesuffix(b"\n"), spec)
        block, first_row = block[line_end:], first_row + culprit + 1


def _compression(uri: str) -> str | None:
    return infer_compression(uri.rstrip("/").rsplit("/", 1)[-1])


def read_jsonl(uri: str, spec: CorpusSpec) -> Iterator[RowBatch | RawRow]:
    """One record per line; a final newline does not make an extra record.

    Compression follows the name (.gz, .bz2, .xz, .zst); a file that looks compressed
    but is not named so, or that fails to decompress, fails the shard.
    """
    compression = _compression(uri)
    try:
        fh = fsspec.open(uri, "rb", compression=compression).open()
    except Exception as exc:  # noqa: BLE001 - any open failure is a shard failure
        raise ShardReadError(f"{uri}: cannot open shard: {exc}") from exc
    lines_done = 0
    try:
        carry = b""
        first = True
        while True:
            try:
                chunk = fh.read(BLOCK_BYTES)
            except Exception as exc:  # noqa: BLE001 - truncated or corrupt compressed data
                what = f"{compression} data" if compression else "shard"
                raise ShardReadError(f"{uri}: cannot read {what} after line {lines_done}: "
                                     f"{type(exc).__name__}: {exc}") from exc
            if first and compression is None:
                for magic, kind in _MAGIC.items():
                    if chunk.startswith(magic):
                        raise ShardReadError(f"{uri}: looks like {kind}-compressed data but "
                                             "the name has no compression suffix; rename it "
                                             "(.gz, .zst, .bz2, .xz)")
            first = False
            if not chunk:
                break
            data = carry + chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data
                continue
            block, carry = data[:cut + 1], data[cut + 1:]
            yield from _jsonl_block(block, lines_done, spec)
            lines_done += block.count(b"\n")
        if carry:
            yield from _jsonl_block(carry, lines_done, spec)
    finally:
        fh.close()


_STRING_TYPES = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)


def _is_string(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return any(test(kind) for test in _STRING_TYPES)


def _text_values(column: pa.Array, offset: int, spec: CorpusSpec,
                 ids: list[str | None]) -> Iterator[RawRow]:
    """Row by row, for column types the vectorised path does not cover."""
    kind = column.type
    for i, value in enumerate(column.to_pylist()):
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


def _parquet_ids(column: pa.Array | None) -> pa.Array | None:
    """Source ids as strings where a cast gives what ``_source_id`` gives, else None."""
    if column is None:
        return None
    kind = column.type
    if _is_string(kind) or pa.types.is_integer(kind) or pa.types.is_null(kind):
        return column.cast(pa.string())
    return pa.array([_source_id(v) for v in column.to_pylist()], pa.string())


def _parquet_group(table: pa.Table, offset: int, spec: CorpusSpec
                   ) -> Iterator[RowBatch | RawRow]:
    text = table.column(spec.text_column).combine_chunks()
    ids = (_parquet_ids(table.column(spec.id_column).combine_chunks())
           if spec.id_column else None)
    kind = text.type
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        try:
            text = text.cast(pa.large_string())
        except pa.ArrowInvalid:  # some rows are not UTF-8: row by row for this group
            id_list = ids.to_pylist() if ids is not None else [None] * len(text)
            yield from _text_values(text, offset, spec, id_list)
            return
    elif not _is_string(kind):
        id_list = ids.to_pylist() if ids is not None else [None] * len(text)
        yield from _text_values(text, offset, spec, id_list)
        return
    text = text.cast(pa.large_string())
    if text.null_count == 0:
        yield _batch(offset, ids, text)
        return
    valid = np.asarray(text.is_valid())
    start = 0
    for i in np.flatnonzero(~valid).tolist():
        if i > start:
            yield _batch(offset + start, None if ids is None else ids[start:i], text[start:i])
        yield RawRow(offset + i, None if ids is None else ids[i].as_py(), None,
                     Reason.MISSING_TEXT, spec.text_column,
                     f"field {spec.text_column!r} is null")
        start = i + 1
    if start < len(text):
        yield _batch(offset + start, None if ids is None else ids[start:], text[start:])


def read_parquet_shard(uri: str, spec: CorpusSpec) -> Iterator[RowBatch | RawRow]:
    """Stream a Parquet shard one row group at a time; schema problems fail the shard."""
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
        for group in range(pf.num_row_groups):
            try:
                table = pf.read_row_group(group, columns=columns)
            except Exception as exc:  # noqa: BLE001 - corrupt pages surface here
                raise ShardReadError(f"{uri}: corrupt Parquet data after row {offset}: "
                                     f"{exc}") from exc
            yield from _parquet_group(table, offset, spec)
            offset += table.num_rows
    finally:
        fh.close()


def read_shard(uri: str, spec: CorpusSpec) -> Iterator[RowBatch | RawRow]:
    """Dispatch on the corpus format."""
    if spec.format == "jsonl":
        return read_jsonl(uri, spec)
    return read_parquet_shard(uri, spec)
