"""The LanceDB index: exact and ANN search, the full-text index, incremental sync, exclusion
of the root."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from lakehouse.retrieval import filter_hits
from lakehouse.vector_index import ANN_KINDS, Hits, IndexParams, VectorIndex, ann_plan

pytest_plugins = ("tests.object_store",)  # the s3_server and s3_bucket fixtures

DIM = 16


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _shard(prefix: str, vecs: np.ndarray, corpus: str = "c",
           texts: list[str] | None = None) -> pa.Table:
    n = len(vecs)
    texts = texts or [f"chunk {i} of shard {prefix}" for i in range(n)]
    return pa.table({"chunk_id": [f"{prefix}:{i}" for i in range(n)],
                     "doc_id": [f"{prefix}-doc{i // 2}" for i in range(n)],
                     "corpus": [corpus] * n, "text": texts,
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
    with pytest.raises(ValueError, match="ivf_hnsw_sq"):
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


def _texts(n: int, prefix: str, planted: dict[int, str]) -> list[str]:
    """Plain sentences, with the planted ones at their indices."""
    base = [f"The committee of {prefix} met on day {i} to review the harbour accounts."
            for i in range(n)]
    for i, text in planted.items():
        base[i] = text
    return base


def _lexical_ids(index: VectorIndex, query: str, k: int = 5) -> list[str]:
    (hits,) = index.search_lexical([query], k)
    return hits.chunk_ids


def test_full_text_index_is_built_queried_and_follows_the_shards(tmp_path):
    rng = np.random.default_rng(4)
    va, vb = _unit(rng.normal(size=(20, DIM))), _unit(rng.normal(size=(10, DIM)))
    shards = {
        "c/a": _shard("a", va, texts=_texts(20, "a", {3: "Quorvath Elindsey led the survey."})),
        "c/b": _shard("b", vb, texts=_texts(10, "b", {1: "Quorvath Elindsey and Quorvath's "
                                                         "permit BX-4411 were stamped."})),
    }
    index = VectorIndex(str(tmp_path / "db"), DIM)
    r1 = index.sync({"c/a": "v1"}, shards.__getitem__)
    assert r1.fts == "built" and index.has_fts()
    assert _lexical_ids(index, "who was Quorvath") == ["a:3"]
    (hits,) = index.search_lexical(["Quorvath"], 3)
    assert hits.vectors.shape == (1, DIM) and np.allclose(hits.vectors[0], va[3], atol=1e-6)
    # a new shard is merged into the index, with the BM25 scores a rebuild would give
    r2 = index.sync({"c/a": "v1", "c/b": "v1"}, shards.__getitem__)
    assert (r2.added, r2.fts) == (["c/b"], "merged")
    merged = index.search_lexical(["Quorvath permit", "harbour accounts day 7"], 10)
    assert merged[0].chunk_ids[:2] == ["b:1", "a:3"]
    assert _lexical_ids(index, "BX-4411") == ["b:1"]
    fresh = VectorIndex(str(tmp_path / "fresh"), DIM)
    fresh.sync({"c/a": "v1", "c/b": "v1"}, shards.__getitem__)
    for m, f in zip(merged, fresh.search_lexical(["Quorvath permit", "harbour accounts day 7"],
                                                 10), strict=True):
        assert np.allclose(m.scores, f.scores, rtol=1e-5)  # ids may differ among ties
        above = m.scores > m.scores[-1] + 1e-4
        assert set(np.asarray(m.chunk_ids)[above]) == set(np.asarray(f.chunk_ids)[above])
    # nothing changed: nothing to do
    assert index.sync({"c/a": "v1", "c/b": "v1"}, shards.__getitem__).fts == "current"
    # a removed shard leaves neither index
    r3 = index.sync({"c/b": "v1"}, shards.__getitem__)
    assert r3.removed == ["c/a"] and r3.fts == "merged"
    assert _lexical_ids(index, "Quorvath led the survey") == ["b:1"]  # a:3 is gone
    assert "a:3" not in index.search(va[3:4], k=5)[0].chunk_ids
    # a changed shard: the old text is no longer found, the new one is
    shards["c/b"] = _shard("b", vb, texts=_texts(10, "b", {2: "Zaelk Brorv kept the log."}))
    r4 = index.sync({"c/b": "v2"}, shards.__getitem__)
    assert r4.replaced == ["c/b"]
    assert _lexical_ids(index, "Quorvath") == [] and _lexical_ids(index, "Zaelk") == ["b:2"]
    # queries without indexable words find nothing
    assert [h.chunk_ids for h in index.search_lexical(["", "the of and"], 3)] == [[], []]


def test_boosted_clauses_rank_the_anchor_word_first(tmp_path):
    vecs = _unit(np.random.default_rng(5).normal(size=(12, DIM)))
    texts = _texts(12, "a", {
        0: "The ledger was audited by the harbour committee again and again.",
        1: "Drorvaine signed once.",
    })
    index = VectorIndex(str(tmp_path / "db"), DIM)
    index.sync({"c/a": "v1"}, lambda k: _shard("a", vecs, texts=texts))
    query = "the harbour ledger audited committee Drorvaine"
    plain = _lexical_ids(index, query, 2)
    (boosted,) = index.search_lexical([[(query, 1.0), ("Drorvaine", 5.0)]], 2)
    assert plain[0] == "a:0" and boosted.chunk_ids[0] == "a:1"


def test_fts_settings_change_rebuilds_and_can_be_turned_off(tmp_path):
    vecs = _unit(np.random.default_rng(6).normal(size=(8, DIM)))
    texts = _texts(8, "a", {5: "To be or not to be."})
    uri = str(tmp_path / "db")
    VectorIndex(uri, DIM).sync({"c/a": "v1"}, lambda k: _shard("a", vecs, texts=texts))
    # stop words dropped: a query of stop words alone finds nothing
    assert _lexical_ids(VectorIndex(uri, DIM), "to be or not") == []
    keep = VectorIndex(uri, DIM, IndexParams(fts_stop_words=False))
    report = keep.sync({"c/a": "v1"}, lambda k: _shard("a", vecs, texts=texts))
    assert report.fts == "built" and _lexical_ids(keep, "to be or not")[0] == "a:5"
    off = VectorIndex(uri, DIM, IndexParams(fts=False))
    assert off.sync({"c/a": "v1"}, lambda k: _shard("a", vecs)).fts == "none"
    assert not off.has_fts() and off.search_lexical(["be"], 3)[0].chunk_ids == []


def test_a_table_written_before_the_text_column_is_started_over(tmp_path):
    import lancedb

    vecs = _unit(np.random.default_rng(7).normal(size=(6, DIM)))
    old = pa.schema([f for f in pa.schema(
        [("chunk_id", pa.string()), ("doc_id", pa.string()), ("corpus", pa.string()),
         ("shard_key", pa.string()), ("shard_sha", pa.string()),
         ("vector", pa.list_(pa.float32(), DIM))])])
    uri = str(tmp_path / "db")
    data = _shard("a", vecs).drop_columns(["text"])
    data = data.append_column("shard_key", pa.array(["c/a"] * 6)).append_column(
        "shard_sha", pa.array(["v1"] * 6))
    lancedb.connect(uri).create_table("chunks", data=data.select(old.names).cast(old))
    index = VectorIndex(uri, DIM)
    report = index.sync({"c/a": "v1"}, lambda k: _shard("a", vecs))
    assert report.rebuilt and report.added == ["c/a"] and report.fts == "built"
    assert _lexical_ids(index, "chunk 4 of shard")[0] == "a:4"
    # a load without text is indexed for vectors and reported
    report = index.sync({"c/a": "v1", "c/b": "v1"},
                        lambda k: _shard(k[-1], vecs).drop_columns(["text"])
                        if k == "c/b" else _shard("a", vecs))
    assert report.without_text == ["c/b"] and index.count() == 12


def test_document_frequencies_follow_the_shards_and_are_repaired(tmp_path):
    vecs = _unit(np.random.default_rng(8).normal(size=(6, DIM)))
    texts = {"c/a": ["Quorvath met Quorvath.", "The ledger.", "the LEDGER, again", "x", "y", ""],
             "c/b": ["Quorvath", "ledger", "z", "z", "z", "z"]}
    shards = {k: _shard(k[-1], vecs, texts=t) for k, t in texts.items()}
    index = VectorIndex(str(tmp_path / "db"), DIM)
    index.sync({"c/a": "v1"}, shards.__getitem__)
    assert index.document_frequency(["quorvath", "ledger", "nowhere"]) == (
        {"quorvath": 1, "ledger": 2}, 6)
    index.sync({"c/a": "v1", "c/b": "v1"}, shards.__getitem__)
    assert index.document_frequency(["quorvath", "ledger", "z"]) == (
        {"quorvath": 2, "ledger": 3, "z": 4}, 12)
    index.sync({"c/b": "v1"}, shards.__getitem__)
    assert index.document_frequency(["ledger", "again"]) == ({"ledger": 1}, 6)
    # a sync killed after the chunks' commit but before the terms' commit is repaired
    index.db.open_table("terms").delete("shard_key = 'c/b'")
    index.sync({"c/b": "v1"}, shards.__getitem__)
    assert index.document_frequency(["z"]) == ({"z": 4}, 6)


def test_both_indexes_on_the_object_store(s3_bucket):
    from lakehouse.object_store import lance_storage_options

    rng = np.random.default_rng(9)
    va, vb = _unit(rng.normal(size=(12, DIM))), _unit(rng.normal(size=(8, DIM)))
    shards = {"c/a": _shard("a", va, texts=_texts(12, "a", {4: "Quorvath Elindsey led."})),
              "c/b": _shard("b", vb, texts=_texts(8, "b", {2: "Permit BX-4411 was stamped."}))}
    uri = f"{s3_bucket.url}/lake/lancedb"
    index = VectorIndex(uri, DIM, storage_options=lance_storage_options(uri))
    assert index.sync({"c/a": "v1"}, shards.__getitem__).fts == "built"
    assert _lexical_ids(index, "Quorvath") == ["a:4"]
    report = index.sync({"c/a": "v1", "c/b": "v1"}, shards.__getitem__)
    assert (report.added, report.fts) == (["c/b"], "merged")
    (hits,) = index.search_lexical(["BX-4411"], 3)
    assert hits.chunk_ids == ["b:2"] and np.allclose(hits.vectors[0], vb[2], atol=1e-6)
    assert index.document_frequency(["quorvath", "4411"]) == ({"quorvath": 1, "4411": 1}, 20)
    index.sync({"c/b": "v1"}, shards.__getitem__)
    assert _lexical_ids(index, "Quorvath") == [] and index.search(vb[2:3], k=1)[0].chunk_ids == [
        "b:2"]
