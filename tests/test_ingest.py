"""Ingest: every bad-row kind lands in quarantine with its reason; counts always balance."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse.corpora import CorpusSpec
from lakehouse.ingest import ingest_rows
from lakehouse.readers import ShardReadError, read_shard
from lakehouse.storage import write_parquet


def _jsonl(path: Path, lines: list[bytes]) -> str:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return str(path)


def _ingest(uri: str, spec: CorpusSpec, max_chars: int = 1000):
    return ingest_rows(read_shard(uri, spec), spec.name, "s0", uri, max_chars)


def _reasons(result) -> dict[int, str]:
    return dict(zip(result.quarantine["row_index"].to_pylist(),
                    result.quarantine["reason"].to_pylist(), strict=True))


def test_each_bad_jsonl_row_kind_is_quarantined_with_its_reason(tmp_path):
    spec = CorpusSpec("c", str(tmp_path), "jsonl")
    uri = _jsonl(tmp_path / "s0.jsonl", [
        json.dumps({"id": "good", "text": "A good document."}).encode(),
        b'{"id": "broken", "text": "no end',                      # malformed JSON
        b'{"id": "latin1", "text": "caf\xe9"}',                      # undecodable bytes
        json.dumps({"id": "none"}).encode(),                         # missing text
        json.dumps({"id": "null", "text": None}).encode(),           # missing (null) text
        json.dumps({"id": "num", "text": 7}).encode(),               # non-string text
        json.dumps({"id": "blank", "text": " \u0000\u0007 "}).encode(),  # empty after cleaning
        json.dumps({"id": "long", "text": "x" * 1001}).encode(),     # too long
        json.dumps(["not", "an", "object"]).encode(),                # not an object
        b"",                                                         # blank line
        json.dumps({"id": "good", "text": "Other text, same id."}).encode(),  # duplicate id
        json.dumps({"id": "copy", "text": "A good document."}).encode(),      # exact duplicate
    ])
    result = _ingest(uri, spec)
    assert _reasons(result) == {
        1: "malformed_json", 2: "undecodable_bytes", 3: "missing_text", 4: "missing_text",
        5: "non_string_text", 6: "empty_after_cleaning", 7: "too_long", 8: "malformed_json",
        9: "malformed_json", 10: "duplicate_id",
    }
    assert result.docs["source_id"].to_pylist() == ["good"]
    assert result.duplicates["row_index"].to_pylist() == [11]
    assert result.duplicates["duplicate_of"].to_pylist() == result.docs["doc_id"].to_pylist()
    c = result.counts
    assert c == {"rows_in": 12, "docs_out": 1, "duplicates": 1, "quarantined": 10}
    assert c["rows_in"] == c["docs_out"] + c["duplicates"] + c["quarantined"]
    details = result.quarantine["detail"].to_pylist()
    assert all(details), "every quarantined row says why"
    assert "line 2" in details[0]


def test_bad_parquet_rows_are_quarantined(tmp_path):
    spec = CorpusSpec("c", str(tmp_path), "parquet")
    table = pa.table({"id": ["a", "b", "c", "d"],
                      "text": ["fine text", None, "\x00\x00", "y" * 50]})
    write_parquet(table, tmp_path / "s0.parquet")
    result = _ingest(str(tmp_path / "s0.parquet"), spec, max_chars=20)
    assert _reasons(result) == {1: "missing_text", 2: "empty_after_cleaning", 3: "too_long"}
    assert result.docs["text"].to_pylist() == ["fine text"]


def test_binary_text_column_quarantines_undecodable_rows(tmp_path):
    spec = CorpusSpec("c", str(tmp_path), "parquet")
    table = pa.table({"id": ["a", "b"], "text": pa.array([b"ok bytes", b"\xff\xfe"],
                                                          pa.binary())})
    pq.write_table(table, tmp_path / "s0.parquet")
    result = _ingest(str(tmp_path / "s0.parquet"), spec)
    assert _reasons(result) == {1: "undecodable_bytes"}
    assert result.docs["text"].to_pylist() == ["ok bytes"]


def test_non_string_parquet_column_is_quarantined_per_row(tmp_path):
    spec = CorpusSpec("c", str(tmp_path), "parquet")
    pq.write_table(pa.table({"id": ["a", "b"], "text": [1, 2]}), tmp_path / "s0.parquet")
    result = _ingest(str(tmp_path / "s0.parquet"), spec)
    assert set(_reasons(result).values()) == {"non_string_text"}


def test_unreadable_shard_fails_with_the_file_name(tmp_path):
    bad = tmp_path / "s0.parquet"
    bad.write_bytes(b"this is not parquet")
    spec = CorpusSpec("c", str(tmp_path), "parquet")
    with pytest.raises(ShardReadError, match="s0.parquet"):
        _ingest(str(bad), spec)


def test_missing_text_column_fails_naming_file_and_field(tmp_path):
    spec = CorpusSpec("c", str(tmp_path), "parquet", text_column="content")
    write_parquet(pa.table({"id": ["a"], "text": ["t"]}), tmp_path / "s0.parquet")
    with pytest.raises(ShardReadError, match=r"s0\.parquet.*'content'"):
        _ingest(str(tmp_path / "s0.parquet"), spec)


def test_doc_ids_are_stable_and_derived_from_text_without_ids(tmp_path):
    spec = CorpusSpec("c", str(tmp_path), "jsonl", id_column=None)
    uri = _jsonl(tmp_path / "s0.jsonl", [json.dumps({"text": "alpha"}).encode(),
                                         json.dumps({"text": "beta"}).encode()])
    first = _ingest(uri, spec).docs["doc_id"].to_pylist()
    again = _ingest(uri, spec).docs["doc_id"].to_pylist()
    assert first == again and len(set(first)) == 2


def test_ingest_writes_identical_bytes_twice(tmp_path):
    spec = CorpusSpec("c", str(tmp_path), "jsonl")
    uri = _jsonl(tmp_path / "s0.jsonl", [json.dumps({"id": str(i), "text": f"doc {i % 7}"})
                                         .encode() for i in range(50)])
    outputs = []
    for n in range(2):
        result = _ingest(uri, spec)
        out = tmp_path / f"out{n}"
        write_parquet(result.docs, out / "docs.parquet")
        write_parquet(result.duplicates, out / "dups.parquet")
        outputs.append(((out / "docs.parquet").read_bytes(), (out / "dups.parquet").read_bytes()))
    assert outputs[0] == outputs[1]
    assert result.counts == {"rows_in": 50, "docs_out": 7, "duplicates": 43, "quarantined": 0}


def test_shards_are_discovered_and_read_from_an_fsspec_url():
    import fsspec

    from lakehouse.corpora import discover_shards

    fs = fsspec.filesystem("memory")
    fs.pipe("/corpus-a/part-0001.jsonl", b'{"id": "1", "text": "hello"}\n{"id": "2"}\n')
    fs.pipe("/corpus-a/part-0000.jsonl", b'{"id": "0", "text": "first"}\n')
    fs.pipe("/corpus-a/notes.txt", b"not a shard")
    spec = CorpusSpec("a", "memory://corpus-a", "jsonl")
    refs = discover_shards(spec)
    assert [(r.key, r.uri) for r in refs] == [
        ("a/part-0000", "memory:///corpus-a/part-0000.jsonl"),
        ("a/part-0001", "memory:///corpus-a/part-0001.jsonl")]
    result = _ingest(refs[1].uri, spec)
    assert result.docs["text"].to_pylist() == ["hello"]
    assert result.quarantine["reason"].to_pylist() == ["missing_text"]
