"""Corpus formats: compressed JSONL by name, Parquet by row group, partition keys without
suffixes, and shards that cannot be decompressed failing by name (never quarantined garbage)."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from backports import zstd

from lakehouse import readers
from lakehouse.corpora import CorpusSpec, discover_shards, shard_name
from lakehouse.ingest import ingest_rows
from lakehouse.readers import RowBatch, ShardReadError, read_shard
from lakehouse.storage import write_parquet

COMPRESS = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress,
            ".zst": zstd.compress}


def _rows(n: int = 15) -> bytes:
    lines = [json.dumps({"id": f"r{i}", "text": f"Document {i % 11}: caf\u00e9 na\u0131ve."})
             for i in range(n)]
    lines[3] = '{"id": "broken", "text": "no end'
    lines[7] = json.dumps({"id": "r7"})
    return ("\n".join(lines) + "\n").encode()


def _ingest(uri: str, spec: CorpusSpec):
    return ingest_rows(read_shard(uri, spec), spec.name, "s", uri, 1000)


def _parquet_bytes(table: pa.Table, folder: Path, name: str) -> bytes:
    return Path(write_parquet(table, folder / f"{name}.parquet")).read_bytes()


@pytest.mark.parametrize("suffix", sorted(COMPRESS))
def test_compressed_jsonl_gives_the_documents_of_the_plain_file(tmp_path, suffix):
    plain_dir, packed_dir = tmp_path / "plain", tmp_path / "packed"
    plain_dir.mkdir()
    packed_dir.mkdir()
    (plain_dir / "part-0.jsonl").write_bytes(_rows())
    (packed_dir / f"part-0.jsonl{suffix}").write_bytes(COMPRESS[suffix](_rows()))
    outputs = []
    for folder in (plain_dir, packed_dir):
        spec = CorpusSpec("c", str(folder), "jsonl")
        [ref] = discover_shards(spec)
        assert ref.key == "c/part-0"  # no .jsonl, no compression suffix
        result = _ingest(ref.uri, spec)
        assert result.counts == {"rows_in": 15, "docs_out": 10, "duplicates": 3,
                                 "quarantined": 2}
        out = tmp_path / "out" / folder.name
        outputs.append([_parquet_bytes(t, out, n) for n, t in
                        (("docs", result.docs), ("dups", result.duplicates))])
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize("suffix", sorted(COMPRESS))
def test_corrupt_compressed_shard_fails_naming_the_file(tmp_path, suffix):
    data = COMPRESS[suffix](_rows(2000))
    broken = data[: len(data) // 2]  # truncated mid-stream
    path = tmp_path / f"part-0.jsonl{suffix}"
    path.write_bytes(broken)
    spec = CorpusSpec("c", str(tmp_path), "jsonl")
    with pytest.raises(ShardReadError, match=rf"part-0\.jsonl\{suffix}.*after line \d+"):
        _ingest(str(path), spec)


def test_garbage_named_gz_fails_instead_of_quarantining(tmp_path):
    path = tmp_path / "part-0.jsonl.gz"
    path.write_bytes(_rows())  # plain text under a .gz name
    with pytest.raises(ShardReadError, match=r"part-0\.jsonl\.gz"):
        _ingest(str(path), CorpusSpec("c", str(tmp_path), "jsonl"))


def test_flipped_bytes_in_gzip_fail_the_shard(tmp_path):
    data = bytearray(gzip.compress(_rows(3000)))
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0x5A
    path = tmp_path / "part-0.jsonl.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(ShardReadError, match=r"part-0\.jsonl\.gz: cannot read gzip data"):
        _ingest(str(path), CorpusSpec("c", str(tmp_path), "jsonl"))


def test_compressed_data_without_a_suffix_is_named_as_such(tmp_path):
    path = tmp_path / "part-0.jsonl"
    path.write_bytes(gzip.compress(_rows()))
    with pytest.raises(ShardReadError, match=r"part-0\.jsonl: looks like gzip"):
        _ingest(str(path), CorpusSpec("c", str(tmp_path), "jsonl"))


def test_jsonl_is_streamed_in_blocks_of_whole_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "BLOCK_BYTES", 512)
    path = tmp_path / "part-0.jsonl.gz"
    path.write_bytes(gzip.compress(_rows(400)))
    items = list(read_shard(str(path), CorpusSpec("c", str(tmp_path), "jsonl")))
    batches = [i for i in items if isinstance(i, RowBatch)]
    assert len(batches) > 20 and max(b.num_rows for b in batches) < 20
    indexes = [i for item in items for i in (item.table["row_index"].to_pylist()
               if isinstance(item, RowBatch) else [item.row_index])]
    assert indexes == list(range(400))


def test_line_ends_and_a_missing_final_newline(tmp_path):
    spec = CorpusSpec("c", str(tmp_path), "jsonl")
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"id": "a", "text": "one"}\r\n{"id": "b", "text": "two"}')
    result = _ingest(str(path), spec)
    assert result.docs["text"].to_pylist() == ["one", "two"]
    (tmp_path / "e.jsonl").write_bytes(b"")
    assert _ingest(str(tmp_path / "e.jsonl"), spec).counts["rows_in"] == 0


def test_parquet_is_read_one_row_group_at_a_time(tmp_path, monkeypatch):
    table = pa.table({"id": [f"r{i}" for i in range(1000)],
                      "text": [f"text number {i}" for i in range(1000)]})
    pq.write_table(table, tmp_path / "s.parquet", row_group_size=100)
    seen = []
    real = pq.ParquetFile.read_row_group

    def spy(self, i, *args, **kwargs):
        seen.append(i)
        return real(self, i, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    items = list(read_shard(str(tmp_path / "s.parquet"), CorpusSpec("c", str(tmp_path))))
    assert seen == list(range(10))
    assert [b.num_rows for b in items] == [100] * 10


def test_shard_names_drop_format_and_compression_suffixes():
    assert shard_name("part-0.jsonl.gz") == "part-0"
    assert shard_name("part-0.JSONL.ZST") == "part-0"
    assert shard_name("data/train-00000-of-00002.parquet") == "data__train-00000-of-00002"
    assert shard_name("c4-train.00001-of-01024.json.gz") == "c4-train.00001-of-01024"
    assert shard_name("notes.txt") == "notes"


def test_two_files_for_one_partition_are_an_error(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(_rows(8))
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(_rows(8)))
    with pytest.raises(ValueError, match=r"a\.jsonl and .*a\.jsonl\.gz both map to partition c/a"):
        discover_shards(CorpusSpec("c", str(tmp_path), "jsonl"))


def test_compressed_shards_on_an_fsspec_url():
    fs = fsspec.filesystem("memory")
    fs.pipe("/zcorpus/p-1.jsonl.zst", COMPRESS[".zst"](_rows(9)))
    fs.pipe("/zcorpus/p-0.jsonl.gz", COMPRESS[".gz"](_rows(9)))
    spec = CorpusSpec("z", "memory://zcorpus", "jsonl")
    refs = discover_shards(spec)
    assert [r.key for r in refs] == ["z/p-0", "z/p-1"]
    for ref in refs:
        assert _ingest(ref.uri, spec).counts["rows_in"] == 9


def test_gzip_written_by_fsspec_round_trips(tmp_path):
    path = tmp_path / "w.jsonl.gz"
    with fsspec.open(str(path), "wb", compression="infer") as fh:
        fh.write(_rows(9))
    assert gzip.GzipFile(fileobj=io.BytesIO(path.read_bytes())).read() == _rows(9)
    assert _ingest(str(path), CorpusSpec("c", str(tmp_path), "jsonl")).counts["rows_in"] == 9
