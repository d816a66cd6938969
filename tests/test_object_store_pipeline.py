"""The whole data graph with the lake (and the corpora) on a real S3 server (moto's,
started by the fixture): same bytes as a local lake, an index that holds every pool chunk,
a catalog that reads the lake through the object store."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from lakehouse.catalog import query
from lakehouse.storage import filesystem
from orchestration.config import load_config
from tests.object_store import s3_bucket, s3_server  # noqa: F401  (fixtures)
from tests.test_pipeline import run_pipeline


def _parquet_bytes(root: str) -> dict[str, bytes]:
    """Relative path -> bytes of every Parquet file under a lake root (local or s3://)."""
    fs, base = filesystem(root)
    base = base.rstrip("/")
    return {p[len(base) + 1:]: fs.cat_file(p) for p in sorted(fs.find(base))
            if p.endswith(".parquet")}


@pytest.mark.slow  # the tiny pipeline twice (MiniLM)
def test_the_data_graph_on_object_storage_matches_a_local_lake(tiny_config, s3_bucket,  # noqa: F811
                                                               tmp_path):
    local = load_config(tiny_config)
    run_pipeline(tiny_config, dg.DagsterInstance.ephemeral())

    fs, _ = filesystem(s3_bucket.url)
    raw = yaml.safe_load(tiny_config.read_text())
    for corpus in raw["corpora"]:  # the corpora on the object store too
        folder = Path(local.corpus(corpus["name"]).uri)
        for path in sorted(folder.iterdir()):
            fs.put_file(str(path), f"{s3_bucket.name}/corpora/{corpus['name']}/{path.name}")
        corpus["uri"] = f"{s3_bucket.url}/corpora/{corpus['name']}"
    raw["lake"] = f"{s3_bucket.url}/lake"
    remote_config = tmp_path / "remote" / "pipeline.yaml"
    remote_config.parent.mkdir()
    remote_config.write_text(yaml.safe_dump(raw, sort_keys=False))
    remote = load_config(remote_config)
    checks = run_pipeline(remote_config, dg.DagsterInstance.ephemeral())
    assert checks and all(c.passed for c in checks)

    here, there = _parquet_bytes(local.lake), _parquet_bytes(remote.lake)
    assert set(there) == set(here) and len(here) > 20
    differ = {p for p in here if here[p] != there[p]}
    # quarantine and shard_stats record where each shard was read from (a local path here,
    # an s3:// URL there); without that column they are the same tables
    assert differ <= {p for p in here if p.startswith(("quarantine/", "shard_stats/"))}
    for p in differ:
        a, b = (pq.read_table(pa.BufferReader(x)) for x in (here[p], there[p]))
        assert a.drop(["source_uri"]).equals(b.drop(["source_uri"])), p
        assert set(b["source_uri"].to_pylist()) <= {None} | {
            u for u in b["source_uri"].to_pylist() if u and u.startswith(s3_bucket.url)}
    # the index holds every pool chunk (the old local glob found none on s3://)
    _, pool_chunks = query(remote.catalog_path, "SELECT count(*) FROM chunks WHERE corpus "
                           "IN ('planted-pool', 'pystdlib')", remote.lake)
    _, candidates = query(remote.catalog_path, "SELECT count(*) FROM retrieval_candidates",
                          remote.lake)
    assert pool_chunks[0][0] > 0 and candidates[0][0] > 0
    _, local_candidates = query(local.catalog_path, "SELECT count(*) FROM retrieval_candidates")
    assert candidates == local_candidates
