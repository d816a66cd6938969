"""The LanceDB index: exact and ANN search, incremental sync, exclusion of the root."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from lakehouse.retrieval import filter_hits
from lakehouse.vector_index import Hits, IndexParams, VectorIndex, ivf_pq_params

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


def test_ann_index_is_trained_above_the_threshold_and_agrees_with_exact(tmp_path):
    rng = np.random.default_rng(2)
    centers = rng.normal(size=(20, DIM))
    vecs = _unit(centers[rng.integers(0, 20, 3000)] + 0.3 * rng.normal(size=(3000, DIM)))
    params = IndexParams(exact_below=1000, num_sub_vectors=8, nprobes=10, refine_factor=5)
    index = VectorIndex(str(tmp_path / "db"), DIM, params)
    report = index.sync({"c/a": "v1"}, lambda k: _shard("a", vecs))
    assert report.index == "ivf_pq"
    queries = _unit(vecs[:50] + 0.05 * rng.normal(size=(50, DIM)))
    ann = index.search(queries, k=10)
    exact = index.search(queries, k=10, exact=True)
    recall = np.mean([len(set(a.chunk_ids) & set(e.chunk_ids)) / 10
                      for a, e in zip(ann, exact, strict=True)])
    assert recall >= 0.8


def test_ivf_pq_parameters_follow_the_row_count():
    assert ivf_pq_params(200_000, 384, IndexParams()) == (447, 96, 5)
    assert ivf_pq_params(10_000, 384, IndexParams(nprobes=9)) == (100, 96, 9)


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
