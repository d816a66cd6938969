"""Change detection from object metadata only (size, mtime, ETag), against a real S3 server:
a new, a changed, a re-uploaded-but-identical and a removed object; nothing is ever read."""

from __future__ import annotations

import json
import os
import time

import pytest

from lakehouse.corpora import (
    CorpusSpec,
    corpus_fingerprints,
    diff_fingerprints,
    fingerprint_changed,
    shard_fingerprint,
)

pytest_plugins = ("tests.object_store",)  # the s3_server and s3_bucket fixtures


def _lines(tag: str, n: int = 20) -> bytes:
    return "".join(json.dumps({"id": f"{tag}{i}", "text": f"{tag} {i}"}) + "\n"
                   for i in range(n)).encode()


@pytest.fixture
def no_reads(monkeypatch):
    """Fail the test if anything opens or downloads an object."""
    import s3fs

    def refuse(*args, **kwargs):
        raise AssertionError("change detection read an object")

    for name in ("_cat_file", "_open", "open", "_get_file", "cat_file"):
        monkeypatch.setattr(s3fs.S3FileSystem, name, refuse)


def _look(spec: CorpusSpec) -> dict[str, dict]:
    return {key: fp for key, (_, fp) in corpus_fingerprints(spec).items()}


def test_new_changed_reuploaded_and_removed_objects_on_s3(s3_bucket, no_reads):
    client = s3_bucket.server.client()

    def put(name: str, body: bytes) -> None:
        client.put_object(Bucket=s3_bucket.name, Key=f"corpus/{name}", Body=body)

    put("a.jsonl", _lines("a"))
    put("b.jsonl", _lines("b"))
    put("c.jsonl", _lines("c"))
    spec = CorpusSpec("web", f"{s3_bucket.url}/corpus", "jsonl")
    seen = _look(spec)
    assert sorted(seen) == ["web/a", "web/b", "web/c"]
    assert all(fp["etag"] and fp["size"] and fp["mtime"] for fp in seen.values())

    time.sleep(1.1)  # S3 times have one-second resolution
    put("a.jsonl", _lines("a"))  # touched: the same bytes again
    put("b.jsonl", _lines("x"))  # changed: other bytes of the same size
    client.delete_object(Bucket=s3_bucket.name, Key="corpus/c.jsonl")
    put("d.jsonl.gz", b"\x1f\x8b not even read")  # new
    now = _look(spec)
    assert now["web/a"]["mtime"] != seen["web/a"]["mtime"]  # the touch is visible...
    assert now["web/b"]["size"] == seen["web/b"]["size"]
    diff = diff_fingerprints(seen, now)
    assert (diff.new, diff.changed, diff.unchanged, diff.removed) == (
        ["web/d"], ["web/b"], ["web/a"], ["web/c"])  # ...and is not a change
    assert shard_fingerprint(f"{s3_bucket.url}/corpus/b.jsonl") == now["web/b"]
    with pytest.raises(FileNotFoundError):
        shard_fingerprint(f"{s3_bucket.url}/corpus/c.jsonl")


def test_multipart_etag_follows_the_part_layout(s3_bucket):
    from lakehouse.storage import atomic_write_bytes

    body = os.urandom(11 << 20)
    target = f"{s3_bucket.url}/corpus/big.jsonl"

    def write(fh) -> None:
        for start in range(0, len(body), 1 << 20):
            fh.write(body[start:start + (1 << 20)])

    atomic_write_bytes(target, write, part_bytes=5 << 20)
    first = shard_fingerprint(target)
    atomic_write_bytes(target, write, part_bytes=5 << 20)
    same_parts = shard_fingerprint(target)
    atomic_write_bytes(target, write, part_bytes=6 << 20)
    other_parts = shard_fingerprint(target)
    assert first["etag"].endswith("-3") and other_parts["etag"].endswith("-2")
    assert not fingerprint_changed(first, same_parts)
    assert fingerprint_changed(same_parts, other_parts)  # a needless re-run, never a miss


def test_local_files_change_with_size_or_modification_time(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(_lines("a"))
    (tmp_path / "b.jsonl").write_bytes(_lines("b"))
    spec = CorpusSpec("c", str(tmp_path), "jsonl")
    seen = _look(spec)
    assert seen["c/a"]["etag"] is None and seen["c/a"]["size"] == len(_lines("a"))
    stat = os.stat(tmp_path / "a.jsonl")
    os.utime(tmp_path / "a.jsonl", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    (tmp_path / "b.jsonl").unlink()
    diff = diff_fingerprints(seen, _look(spec))
    assert (diff.new, diff.changed, diff.removed) == ([], ["c/a"], ["c/b"])
