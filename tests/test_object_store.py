"""The lake on a real S3 server (moto's, on 127.0.0.1): round trips, multipart uploads that are
all-or-nothing, byte identity with a local lake, DuckDB and LanceDB reading the same store."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pytest

from lakehouse.object_store import lance_storage_options, register_duckdb_filesystem
from lakehouse.storage import Lake, StorageSettings, atomic_write_bytes, exists, write_parquet

pytest_plugins = ("tests.object_store",)  # the s3_server and s3_bucket fixtures

PART = 5 << 20  # the smallest part S3 accepts


def _table(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({"doc_id": [f"d{i}" for i in range(n)],
                     "x": rng.standard_normal(n), "k": rng.integers(0, 5, n)})


def _big_table(mib: int) -> pa.Table:
    """Incompressible bytes, so the Parquet file is about ``mib`` MiB."""
    rows = mib * 16
    blob = np.random.default_rng(1).integers(0, 256, rows * 65536, dtype=np.uint8).tobytes()
    return pa.table({"i": np.arange(rows),
                     "blob": [blob[i * 65536:(i + 1) * 65536] for i in range(rows)]})


def _uploads(bucket) -> list[dict]:
    return bucket.server.client().list_multipart_uploads(Bucket=bucket.name).get("Uploads", [])


def test_write_read_list_exists_round_trip(s3_bucket):
    lake = Lake(f"{s3_bucket.url}/lake")
    table = _table(100)
    for corpus, shard in [("a", "s0"), ("a", "s1"), ("b", "s0")]:
        lake.write_parquet(table, lake.shard_path("chunks", corpus, shard))
    assert lake.exists("chunks", "a", "s1.parquet")
    assert not lake.exists("chunks", "a", "s9.parquet")
    assert lake.glob("chunks", "*", "*.parquet") == [
        f"{s3_bucket.url}/lake/chunks/a/s0.parquet", f"{s3_bucket.url}/lake/chunks/a/s1.parquet",
        f"{s3_bucket.url}/lake/chunks/b/s0.parquet"]
    assert lake.list("chunks") == [f"{s3_bucket.url}/lake/chunks/a",
                                   f"{s3_bucket.url}/lake/chunks/b"]
    assert lake.list("nothing-here") == []
    assert lake.read_parquet(lake.shard_path("chunks", "b", "s0")).equals(table)


def test_listing_sees_objects_written_by_another_client(s3_bucket):
    lake = Lake(f"{s3_bucket.url}/lake")
    assert lake.glob("x", "*.parquet") == []
    s3_bucket.server.client().put_object(Bucket=s3_bucket.name, Key="lake/x/new.parquet",
                                         Body=b"...")
    assert lake.glob("x", "*.parquet") == [f"{s3_bucket.url}/lake/x/new.parquet"]
    assert exists(f"{s3_bucket.url}/lake/x/new.parquet")


def test_large_write_is_a_multipart_upload_with_the_bytes_of_a_local_write(s3_bucket, tmp_path):
    table = _big_table(12)
    lake = Lake(f"{s3_bucket.url}/lake", StorageSettings(upload_part_bytes=PART))
    local = Lake(tmp_path / "lake")
    remote_path = lake.write_parquet(table, lake.shard_path("blobs", "c", "s0"))
    local_path = local.write_parquet(table, local.shard_path("blobs", "c", "s0"))
    head = s3_bucket.server.client().head_object(Bucket=s3_bucket.name,
                                                 Key="lake/blobs/c/s0.parquet")
    assert int(head["ETag"].strip('"').rsplit("-", 1)[1]) >= 2  # a multipart upload's ETag
    with open(local_path, "rb") as fh:
        local_bytes = fh.read()
    assert len(local_bytes) > 12 << 20
    assert lake.fs.cat_file(remote_path.split("://", 1)[1]) == local_bytes
    small = _table(50)
    lake.write_parquet(small, lake.path("t.parquet"))
    local.write_parquet(small, local.path("t.parquet"))
    assert lake.fs.cat_file(f"{s3_bucket.name}/lake/t.parquet") == \
        open(local.path("t.parquet"), "rb").read()
    assert _uploads(s3_bucket) == []


def test_failed_write_leaves_no_object_and_no_pending_upload(s3_bucket):
    target = f"{s3_bucket.url}/lake/x/s0.parquet"
    write_parquet(_table(10), target)
    before = Lake(s3_bucket.url).fs.cat_file(target.split("://", 1)[1])

    def write_then_fail(fh):
        fh.write(os.urandom(3 * PART))  # two parts uploaded already
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write_bytes(target, write_then_fail, part_bytes=PART)
    with pytest.raises(RuntimeError):
        atomic_write_bytes(f"{s3_bucket.url}/lake/x/new.parquet", write_then_fail, PART)
    fs = Lake(s3_bucket.url).fs
    assert fs.cat_file(target.split("://", 1)[1]) == before  # the old object, untouched
    assert not exists(f"{s3_bucket.url}/lake/x/new.parquet")
    assert _uploads(s3_bucket) == []


def test_killed_write_leaves_nothing_under_the_name_and_the_next_writer_cleans_up(
        s3_bucket, tmp_path):
    target = f"{s3_bucket.url}/lake/x/killed.parquet"
    child = textwrap.dedent(f"""
        import os, signal
        from lakehouse.storage import atomic_write_bytes

        def write(fh):
            fh.write(os.urandom(3 * {PART}))
            fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        atomic_write_bytes({target!r}, write, part_bytes={PART})
    """)
    env = {**os.environ, **s3_bucket.server.env()}
    done = subprocess.run([sys.executable, "-c", child], env=env, cwd=os.getcwd(),
                          capture_output=True, timeout=120)
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    assert not exists(target)
    assert [u["Key"] for u in _uploads(s3_bucket)] == ["lake/x/killed.parquet"]
    write_parquet(_table(5), target, part_bytes=PART)  # the next writer of that key
    assert exists(target)
    assert _uploads(s3_bucket) == []


def test_duckdb_reads_lake_parquet_on_the_object_store(s3_bucket):
    import duckdb

    lake = Lake(f"{s3_bucket.url}/lake")
    for shard in ("s0", "s1"):
        lake.write_parquet(_table(40, seed=len(shard)), lake.shard_path("t", "c", shard))
    con = duckdb.connect()
    assert register_duckdb_filesystem(con, lake.root)
    assert not register_duckdb_filesystem(con, lake.root)  # once is enough
    n, keys = con.execute(f"select count(*), count(distinct k) from "
                          f"read_parquet('{lake.asset_glob('t')}')").fetchone()
    assert n == 80 and keys == 5
    assert not register_duckdb_filesystem(duckdb.connect(), "/a/local/lake")


def test_lancedb_creates_appends_and_searches_on_the_object_store(s3_bucket):
    import lancedb

    uri = f"{s3_bucket.url}/lake/index"
    options = lance_storage_options(uri)
    assert options == {"aws_endpoint": s3_bucket.server.endpoint, "allow_http": "true",
                       "aws_region": s3_bucket.server.region,
                       "aws_access_key_id": s3_bucket.server.key,
                       "aws_secret_access_key": s3_bucket.server.secret}
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((64, 8)).astype(np.float32)
    rows = [{"chunk_id": f"c{i}", "vector": v} for i, v in enumerate(vectors)]
    db = lancedb.connect(uri, storage_options=options)
    table = db.create_table("chunks", rows[:40])
    table.add(rows[40:])
    assert db.open_table("chunks").count_rows() == 64
    hits = table.search(vectors[50]).limit(3).to_list()
    assert hits[0]["chunk_id"] == "c50"
    listed = Lake(f"{s3_bucket.url}/lake").list("index")
    assert listed == [f"{s3_bucket.url}/lake/index/chunks.lance"]
    assert lance_storage_options("/local/index") == {}


def test_corpus_shards_are_discovered_and_ingested_from_the_object_store(s3_bucket, tmp_path):
    import gzip
    import json

    from lakehouse.corpora import CorpusSpec, discover_shards
    from lakehouse.ingest import ingest_rows
    from lakehouse.readers import read_shard

    lines = "".join(json.dumps({"id": f"r{i}", "text": f"doc {i}"}) + "\n" for i in range(30))
    client = s3_bucket.server.client()
    client.put_object(Bucket=s3_bucket.name, Key="corpus/part-0.jsonl.gz",
                      Body=gzip.compress(lines.encode()))
    spec = CorpusSpec("web", f"{s3_bucket.url}/corpus", "jsonl")
    [ref] = discover_shards(spec)
    assert (ref.key, ref.uri) == ("web/part-0", f"{s3_bucket.url}/corpus/part-0.jsonl.gz")
    client.put_object(Bucket=s3_bucket.name, Key="corpus/part-1.jsonl", Body=lines.encode())
    assert [r.key for r in discover_shards(spec)] == ["web/part-0", "web/part-1"]  # fresh
    result = ingest_rows(read_shard(ref.uri, spec), "web", "part-0", ref.uri, 1000)
    assert result.counts == {"rows_in": 30, "docs_out": 30, "duplicates": 0, "quarantined": 0}
