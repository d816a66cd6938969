"""The LanceDB index: exact and ANN search, incremental sync, exclusion of the root."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from lakehouse.retrieval import filter_hits
from lakehouse.vector_index import ANN_KINDS, Hits, IndexParams, VectorIndex, ann_plan

DIM = 16


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _shard(prefix: str, vecs: np.ndarray, corpus: str = "c") -> pa.Table:
    n = len(vecs)
    return pa.table({"chunk_id": [f"{prefix}:{i}" for i in range(n)],
                     "doc_id": [f"{prefix}-doc{i // 2}" for i in range(n)],
                     "corpus": [corpus] * n,
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(vecs.ravel()), DIM)})


def test_exact_search_finds_the_nearest_and_sync_is_incremental(tmp_path):
    rng = np.random.default_rng(0)
    a, b = _unit(rng.normal(size=(40, DIM))), _unit(rng.normal(size=(30, DIM)))
    shards = {"c/a": _shard("a", a), "c/b": _shard("b", b)}
    index = VectorIndex(str(tmp_path / "db"), DIM)
    r1 = index.sync({"c/a": "v1"}, shards.__getitem__)
    assert (r1.added, r1.rows, r1.index) == (["c/a"], 40, "exact")
    # the new shard's chunks are found once it is added
    r2 = index.sync({"c/a": "v1", "c/b": "v1"}, shards.__getitem__)
    assert (r2.added, r2.replaced, r2.rows) == (["c/b"], [], 70)
    (hits,) = index.search(b[3:4], k=3)
    assert hits.chunk_ids[0] == "b:3" and hits.scores[0] > 0.999
    assert np.all(np.diff(hits.scores) <= 0) and hits.vectors.shape == (3, DIM)
    # unchanged state: nothing to do
    r3 = index.sync({"c/a": "v1", "c/b": "v1"}, shards.__getitem__)
    assert not (r3.added or r3.replaced or r3.removed)
    # a changed shard is replaced, a removed one dropped
    shards["c/a"] = _shard("a", a[:10])
    r4 = index.sync({"c/a": "v2"}, shards.__getitem__)
    assert (r4.replaced, r4.removed, r4.rows) == (["c/a"], ["c/b"], 10)
    assert index.shard_state() == {"c/a": ("v2", 10)}


def test_a_half_written_shard_is_repaired_by_the_next_sync(tmp_path):
    rng = np.random.default_rng(1)
    vecs = _unit(rng.normal(size=(12, DIM)))
    index = VectorIndex(str(tmp_path / "db"), DIM)
    index.sync({"c/a": "v1"}, lambda k: _shard("a", vecs))
    index.db.open_table("chunks").delete("chunk_id = 'a:0'")  # as if a delete was cut short
    report = index.sync({"c/a": "v1"}, lambda k: _shard("a", vecs), expected_rows={"c/a": 12})
    assert report.replaced == ["c/a"] and report.rows == 12


@pytest.mark.parametrize("kind", ANN_KINDS)
def test_ann_index_is_trained_above_the_threshold_and_agrees_with_exact(tmp_path, kind):
    rng = np.random.default_rng(2)
    centers = rng.normal(size=(20, DIM))
    vecs = _unit(centers[rng.integers(0, 20, 3000)] + 0.3 * rng.normal(size=(3000, DIM)))
    params = IndexParams(kind=kind, exact_below=1000, num_sub_vectors=8, nprobes=10,
                         refine_factor=5 if kind == "ivf_pq" else None)
    index = VectorIndex(str(tmp_path / "db"), DIM, params)
    report = index.sync({"c/a": "v1"}, lambda k: _shard("a", vecs[:2000]))
    assert report.index == kind == index.index_kind()
    # a new shard is folded into the trained index and found by it
    report = index.sync({"c/a": "v1", "c/b": "v1"}, lambda k: _shard(
        k[-1], vecs[:2000] if k == "c/a" else vecs[2000:]))
    assert report.added == ["c/b"] and report.index == kind
    queries = _unit(vecs[1990:2040] + 0.05 * rng.normal(size=(50, DIM)))
    ann = index.search(queries, k=10)
    exact = index.search(queries, k=10, exact=True)
    recall = np.mean([len(set(a.chunk_ids) & set(e.chunk_ids)) / 10
                      for a, e in zip(ann, exact, strict=True)])
    assert recall >= 0.8
    for a in ann:  # best first, each hit's stored vector scores what it says
        assert np.all(np.diff(a.scores) <= 1e-6) and a.vectors.shape == (10, DIM)
    (top,) = index.search(vecs[2010:2011], k=1)
    assert top.chunk_ids == ["b:10"]


def test_another_configured_kind_retrains_the_index(tmp_path):
    vecs = _unit(np.random.default_rng(3).normal(size=(1200, DIM)))
    uri = str(tmp_path / "db")
    VectorIndex(uri, DIM, IndexParams(kind="ivf_sq", exact_below=1000)).sync(
        {"c/a": "v1"}, lambda k: _shard("a", vecs))
    index = VectorIndex(uri, DIM, IndexParams(kind="ivf_hnsw_sq", exact_below=1000))
    # same shards: nothing to sync, the table keeps its index until something changes
    assert index.index_kind() == "ivf_sq"
    report = index.sync({"c/a": "v2"}, lambda k: _shard("a", vecs))
    assert report.replaced == ["c/a"] and index.index_kind() == "ivf_hnsw_sq"


def test_ann_parameters_follow_the_row_count():
    pq = ann_plan(200_000, 384, IndexParams(kind="ivf_pq"))
    assert (pq.num_partitions, pq.num_sub_vectors, pq.nprobes, pq.refine_factor) == \
        (447, 96, 5, 3)
    assert ann_plan(10_000, 384, IndexParams(kind="ivf_pq", nprobes=9)).nprobes == 9
    sq = ann_plan(200_000, 384, IndexParams(kind="ivf_sq"))
    assert (sq.num_partitions, sq.nprobes, sq.refine_factor) == (447, 12, None)
    hnsw = ann_plan(200_000, 384, IndexParams())
    assert (hnsw.kind, hnsw.num_partitions, hnsw.nprobes) == ("ivf_hnsw_sq", 1, 1)
    assert hnsw.ef(8, IndexParams()) == 40 and hnsw.ef(20, IndexParams()) == 80
    big = ann_plan(20_000_000, 384, IndexParams())
    assert (big.num_partitions, big.nprobes) == (20, 6)
    with pytest.raises(ValueError, match="index kind"):
        IndexParams(kind="flat")


def test_root_chunks_and_near_duplicates_are_excluded_and_counted():
    v = _unit(np.eye(4, DIM) + 0.01)
    near_copy = _unit(v[1:2] + 0.001)
    hits = Hits(["root:0", "copy:0", "x:0", "y:0", "z:0"], ["root", "copy", "x", "y", "z"],
                np.array([0.99, 0.98, 0.9, 0.8, 0.7], np.float32),
                np.vstack([v[1:2], near_copy, v[2:3], v[3:4], v[0:1]]))
    f = filter_hits("root", hits, root_vectors=v[1:2], k=2, near_dup_cosine=0.95)
    assert [c.chunk_id for c in f.candidates] == ["x:0", "y:0"]
    assert [c.rank for c in f.candidates] == [1, 2]
    assert (f.excluded_self, f.excluded_near_dup) == (1, 1)
    empty = filter_hits("root", Hits([], [], np.zeros(0), np.zeros((0, DIM))), v, 3, 0.9)
    assert empty.candidates == [] and empty.excluded_self == 0
