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


# --- the columnar path against the row-by-row definition (tests/ingest_reference.py) ---

TRICKY_LINES = [
    b"null", b"5", b'"a string"', b"true", b"[]", b"{}", b"{} null", b"{} {}",
    b'{"id": "x1", "text": "fine"} 5', b'{"id": "x2", "text": "a"}{"id": "x3", "text": "b"}',
    b'\xef\xbb\xbf{"id": "bom", "text": "after a byte-order mark"}',
    b'  {"id": "lead", "text": "leading spaces"}', b'{"id": "trail", "text": "t"}   ',
    b'{"id": "ctl", "text": "raw \x07 bell"}', b'{"id": "tab", "text": "raw \t tab"}',
    b'{"id": "dupkey", "text": "one", "text": "two"}',
    b'{"id": "dupid", "id": "again", "text": "x"}',
    b'{"te\\u0078t": "escaped key", "id": "esc"}',
    b'{"text": "a", "te\\u0078t": "b", "id": "esc2"}',
    b'{"id": "sur", "text": "lone \\ud800 surrogate"}',
    b'{"id": "sur2", "text": "\\udc00"}',
    b'{"id": "pair", "text": "pair \\ud83d\\ude00"}',
    b'{"id": "nul", "text": "nul \\u0000 inside"}',
    b'{"id": "nan", "text": "n", "score": NaN}', b'{"id": "inf", "text": "i", "s": -Infinity}',
    b'{"id": "big", "text": "b", "n": 1e400}', b'{"id": 12345678901234567890123, "text": "bi"}',
    b'{"id": 7, "text": "int id"}', b'{"id": -0, "text": "minus zero"}',
    b'{"id": 1.5, "text": "float id"}', b'{"id": true, "text": "bool id"}',
    b'{"id": {"b": 1, "a": 2}, "text": "object id"}', b'{"id": null, "text": "null id"}',
    b'{"id": "", "text": "empty id"}', b'{"text": "no id at all"}',
    b'{"id": "num", "text": 7}', b'{"id": "flt", "text": 1.5}', b'{"id": "bool", "text": false}',
    b'{"id": "obj", "text": {"a": 1}}', b'{"id": "lst", "text": ["a"]}',
    b'{"id": "nt", "text": null}', b'{"id": "mt"}', b'{"id": "deep", "m": {"text": 1}}',
    b'{"id": "latin1", "text": "caf\xe9"}', b'{"id": "ign", "text": "ok", "m": "\xff"}',
    b'{"id": "ovl", "text": "\xc0\xaf"}', b'{"id": "enc-sur", "text": "\xed\xa0\x80"}',
    b"", b"   ", b"\t", b"\r", b"\x0c", b'{"id": "cr", "text": "cr end"}\r',
    b'{"id": "cr2", "text": "a"}\r{"id": "cr3", "text": "b"}',
    b'{"id": "trailing comma", "text": "t",}', b'{"id": "lz", "text": "t", "n": 01}',
    b'{"id": "ff", "text": "t"}\x0c', b'{"id": "nulbyte", "text": "t"}\x00',
    b'{"id": "multi", "text":', b'"continued"}',
    b'{"id": "decomposed", "text": "Cafe\\u0301 \\u1100\\u1161\\u11a8 \\u212b"}',
    b'{"id": "crlf-text", "text": "a\\r\\nb\\rc\\u0085d\\ufeffe"}',
    b'{"id": "blank-text", "text": " \\u0000\\u0007 "}',
    b'{"id": "long", "text": "' + b"y" * 300 + b'"}',
    b'{"id": "long2", "text": "' + "\u00e9".encode() * 250 + b'"}',
    b'{"id": "dup-id-a", "text": "first text"}', b'{"id": "dup-id-a", "text": "second text"}',
    b'{"id": "dup-id-b", "text": "second text"}', b'{"id": "copy", "text": "first text"}',
    b'{"text": "textual id"}', b'{"text": "textual id"}',
]


def _tricky_shard(seed: int, n_good: int, repeats: int = 3) -> bytes:
    import random

    rng = random.Random(seed)
    pieces = ["plain words", "caf\u00e9", "e\u0301", "\u00e9", "\u0307\u0323", "\r\n", "\t",
              "\x07", "\u2019", "\u3000", "\u0915\u093c", "\uac00\u11a8", "\U0001f600", " "]
    lines = []
    for i in range(n_good):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        sid = rng.choice([f"r{i}", f"r{i}", f"r{i}", f"r{rng.randint(0, i)}", None, ""])
        record = {"text": text} if sid is None else {"id": sid, "text": text}
        lines.append(json.dumps(record, ensure_ascii=rng.random() < 0.5).encode())
    for line in TRICKY_LINES * repeats:
        lines.insert(rng.randint(0, len(lines)), line)
    lines.insert(0, b"null")  # Arrow's reader must never see a leading top-level null
    return b"\n".join(lines) + b"\n"


def _parquet_files(result, folder: Path) -> dict[str, bytes]:
    out = {}
    for name in ("docs", "quarantine", "duplicates"):
        path = write_parquet(getattr(result, name), folder / f"{name}.parquet")
        out[name] = Path(path).read_bytes()
    return out


@pytest.mark.parametrize(("block_bytes", "n_good", "repeats"),
                         [(1 << 23, 4000, 1), (20000, 4000, 1), (700, 600, 3)])
def test_columnar_ingest_is_byte_identical_to_the_row_by_row_definition(
        tmp_path, monkeypatch, block_bytes, n_good, repeats):
    from lakehouse import ingest, readers
    from lakehouse.readers import RowBatch
    from tests import ingest_reference as ref

    monkeypatch.setattr(readers, "BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(ingest, "PART_ROWS", 97 if block_bytes < 1000 else 8192)
    data = _tricky_shard(seed=block_bytes, n_good=n_good, repeats=repeats)
    uri = _jsonl(tmp_path / "s0.jsonl", [data.rstrip(b"\n")])
    spec = CorpusSpec("c", str(tmp_path), "jsonl")
    items = list(read_shard(uri, spec))
    columnar = sum(item.num_rows for item in items if isinstance(item, RowBatch))
    assert columnar > (n_good // 2 if repeats == 1 else 0)  # the Arrow path is exercised
    new = ingest_rows(iter(items), "c", "s0", uri, 200)
    old = ref.ingest_rows(ref.jsonl_rows(data, spec), "c", "s0", uri, 200)
    assert new.counts == old.counts
    assert new.quarantine.to_pylist() == old.quarantine.to_pylist()
    assert _parquet_files(new, tmp_path / "new") == _parquet_files(old, tmp_path / "old")
    reasons = set(new.quarantine["reason"].to_pylist())
    assert reasons == {"malformed_json", "undecodable_bytes", "missing_text", "non_string_text",
                       "empty_after_cleaning", "too_long", "duplicate_id"}


def test_columnar_ingest_matches_on_parquet_of_every_column_type(tmp_path):
    from tests import ingest_reference as ref

    texts = ["a", None, "e\u0301\x07", "", "dup", "dup", "x" * 60, " \u00e9 "] * 40
    columns = {
        "string": pa.array(texts, pa.string()),
        "large": pa.array(texts, pa.large_string()),
        "dict": pa.array(texts, pa.string()).dictionary_encode(),
        "binary": pa.array([None if t is None else t.encode() for t in texts], pa.binary()),
        "badbinary": pa.array([b"\xff" if i % 7 == 0 else (t or "").encode()
                               for i, t in enumerate(texts)], pa.binary()),
        "ints": pa.array([i % 5 for i in range(len(texts))], pa.int64()),
    }
    ids = {"sid": pa.array([f"r{i % 150}" for i in range(len(texts))]),
           "iid": pa.array([i % 150 for i in range(len(texts))], pa.int32()),
           "fid": pa.array([i / 2 for i in range(len(texts))], pa.float64())}
    for text_name, text_col in columns.items():
        for id_name, id_col in ids.items():
            path = tmp_path / f"{text_name}-{id_name}.parquet"
            pq.write_table(pa.table({"id": id_col, "text": text_col}), path, row_group_size=37)
            spec = CorpusSpec("c", str(tmp_path), "parquet")
            new = ingest_rows(read_shard(str(path), spec), "c", "s", str(path), 50)
            old = ref.ingest_rows(ref.parquet_rows(str(path), spec), "c", "s", str(path), 50)
            out = tmp_path / f"{text_name}-{id_name}"
            assert _parquet_files(new, out / "new") == _parquet_files(old, out / "old"), \
                (text_name, id_name)


def test_clean_texts_equals_clean_text_on_random_unicode():
    import random

    from lakehouse.normalize import clean_text, clean_texts, nfc_unstable_codepoints

    rng = random.Random(5)
    unstable = sorted(nfc_unstable_codepoints())
    alphabet = [*"ab e\n\t\r ", "\r\n", "\x00", "\x07", "\x85", "\ufeff", "\u0301", "\u0327",
                "\u00e9", "\u00a0", "\u3000", "\u2028", "\uac00", "\u1100", "\u1161", "\u11a8",
                "\u0f73", "\u212b", "\u2019", "\U0001f600", "\u1e17"]
    samples = []
    while len(samples) < 20000:
        parts = []
        for _ in range(rng.randint(0, 12)):
            r = rng.random()
            parts.append(rng.choice(alphabet) if r < 0.5 else
                         chr(rng.choice(unstable)) if r < 0.8 else chr(rng.randint(0x20, 0x2FFFF)))
        text = "".join(parts)
        if not any(0xD800 <= ord(c) <= 0xDFFF for c in text):
            samples.append(text)
    got = clean_texts(pa.array(samples, pa.large_string())).to_pylist()
    assert got == [clean_text(s) for s in samples]
