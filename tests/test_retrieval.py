"""The retrieval stage: hybrid fusion, per-document and near-duplicate candidate limits."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from lakehouse import tables
from lakehouse.retrieval import (
    RetrievalSettings,
    anchor_word,
    lexical_queries,
    rarest_terms,
    retrieve,
    select,
)
from lakehouse.vector_index import Hits, VectorIndex

DIM = 16


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _table(ids: list[str], docs: list[str], texts: list[str], vecs: np.ndarray) -> pa.Table:
    return pa.table({"chunk_id": ids, "doc_id": docs, "corpus": ["pool"] * len(ids),
                     "text": texts,
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(vecs.ravel()), DIM)})


def _pool(tmp_path, n_alike: int = 60):
    """A pool where the query's embedding sits among ``n_alike`` look-alikes (same topic,
    other names) and the true source, which names the entity, is far from it in vector
    space: only the lexical side can find it."""
    rng = np.random.default_rng(0)
    topic = _unit(rng.normal(size=(1, DIM)))[0]
    alike = _unit(topic + 0.15 * rng.normal(size=(n_alike, DIM)))
    far = _unit(-topic[None] + 0.1 * rng.normal(size=(1, DIM)))
    ids = [f"alike{i}:0" for i in range(n_alike)] + ["source:0"]
    docs = [f"alike{i}" for i in range(n_alike)] + ["source"]
    texts = [f"The survey expedition was led by Kel{i}vor Brand, who measured the ice."
             for i in range(n_alike)] + ["Our guide Quorvath Elindsey knew every crevasse."]
    index = VectorIndex(str(tmp_path / "db"), DIM)
    index.sync({"pool/0": "v1"}, lambda k: _table(ids, docs, texts,
                                                  np.vstack([alike, far])))
    query_vec = _unit(topic[None] + 0.05 * rng.normal(size=(1, DIM)))
    return index, query_vec


def _anchors(queries: list[str], words: list[str] | None = None) -> pa.Table:
    cols = {"doc_id": ["root"] * len(queries), "position": list(range(len(queries))),
            "query": queries}
    if words is not None:
        cols["anchor_word"] = words
    return pa.table(cols)


def _no_own() -> pa.Table:
    return pa.table({"doc_id": pa.array([], pa.string()),
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array([], pa.float32()),
                                                                 DIM)})


def test_hybrid_fusion_ranks_a_chunk_only_lexical_search_finds_into_the_top_k(tmp_path):
    index, qv = _pool(tmp_path)
    anchors = _anchors(["the expedition was led by Quorvath Elindsey, who measured"])
    found = {}
    for mode in ("dense", "lexical", "hybrid"):
        table, stats = retrieve(anchors, qv, _no_own(), index,
                                RetrievalSettings(mode=mode, depth=16, context_terms=0))
        assert table.schema == tables.RETRIEVAL_CANDIDATES
        # the lexical query is the window's two rarest words: only the source holds them
        n = 1 if mode == "lexical" else 8
        assert table["rank"].to_pylist() == list(range(1, n + 1))
        found[mode] = dict(zip(table["chunk_id"].to_pylist(), table["found_by"].to_pylist(),
                               strict=True))
        assert stats["mode"] == mode and stats["candidates"] == n
    assert "source:0" not in found["dense"]  # the embedding lands among the look-alikes
    assert found["hybrid"]["source:0"] == "lexical" and found["lexical"] == {
        "source:0": "lexical"}
    assert set(found["dense"].values()) == {"dense"}
    _, stats = retrieve(anchors, qv, _no_own(), index, RetrievalSettings(depth=16, context_terms=0))
    assert stats["share_both"] == 1.0 and stats["share_lexical_only"] == 0.0
    assert stats["candidates_found_by"]["lexical"] >= 1
    assert "source:0" in stats["sample"] or "alike" in stats["sample"]
    assert stats["sample"].startswith("| root | position | query |")


def test_lexical_mode_needs_no_query_vectors_and_its_score_is_bm25(tmp_path):
    index, _ = _pool(tmp_path)
    table, stats = retrieve(_anchors(["Quorvath"]), None, _no_own(), index,
                            RetrievalSettings(mode="lexical", context_terms=0))
    assert table["chunk_id"].to_pylist() == ["source:0"]
    assert table["bm25"][0].as_py() > 0 and np.isnan(table["score"][0].as_py())
    assert stats["share_lexical_only"] == 1.0


def _hits(ids: list[str], docs: list[str], vecs: np.ndarray, scores=None) -> Hits:
    scores = np.linspace(0.9, 0.5, len(ids)).astype(np.float32) if scores is None else scores
    return Hits(ids, docs, scores, vecs.astype(np.float32))


def test_per_document_limit_spends_k_slots_on_distinct_documents():
    vecs = _unit(np.random.default_rng(1).normal(size=(6, DIM)))
    hits = _hits(["d1:0", "d1:1", "d1:2", "d2:0", "d3:0", "d1:3"],
                 ["d1", "d1", "d1", "d2", "d3", "d1"], vecs)
    f = select("root", {"dense": hits}, np.zeros((0, DIM)), None, k=3, near_dup_cosine=0.95,
               per_doc=1, dedup_cosine=None)
    assert [c.chunk_id for c in f.candidates] == ["d1:0", "d2:0", "d3:0"]
    assert f.excluded_per_doc == 2  # d1:1, d1:2 passed over before K was filled
    two = select("root", {"dense": hits}, np.zeros((0, DIM)), None, k=3, near_dup_cosine=0.95,
                 per_doc=2, dedup_cosine=None)
    assert [c.chunk_id for c in two.candidates] == ["d1:0", "d1:1", "d2:0"]
    unlimited = select("root", {"dense": hits}, np.zeros((0, DIM)), None, k=3,
                       near_dup_cosine=0.95, per_doc=None, dedup_cosine=None)
    assert [c.chunk_id for c in unlimited.candidates] == ["d1:0", "d1:1", "d1:2"]


def test_near_duplicate_candidates_collapse_to_the_best_ranked():
    rng = np.random.default_rng(2)
    base = _unit(rng.normal(size=(4, DIM)))
    boiler = base[0]
    vecs = np.vstack([boiler, _unit(boiler[None] + 0.01 * rng.normal(size=(1, DIM))),
                      base[1], _unit(boiler[None] + 0.01 * rng.normal(size=(1, DIM))),
                      base[2], base[3]])
    hits = _hits(["a:0", "b:0", "c:0", "d:0", "e:0", "f:0"], list("abcdef"), vecs)
    f = select("root", {"dense": hits}, np.zeros((0, DIM)), None, k=3, near_dup_cosine=0.95)
    assert [c.chunk_id for c in f.candidates] == ["a:0", "c:0", "e:0"]
    assert f.excluded_dup_candidate == 2 and f.excluded_per_doc == 0
    off = select("root", {"dense": hits}, np.zeros((0, DIM)), None, k=3,
                 near_dup_cosine=0.95, dedup_cosine=None)
    assert [c.chunk_id for c in off.candidates] == ["a:0", "b:0", "c:0"]


def test_fusion_counts_each_side_and_excludes_the_root_from_both():
    rng = np.random.default_rng(3)
    v = _unit(rng.normal(size=(5, DIM)))
    root_vecs = v[4:5]
    dense = _hits(["root:0", "x:0", "y:0", "copy:0"], ["root", "x", "y", "copy"],
                  np.vstack([v[4], v[0], v[1], v[4]]))
    lexical = _hits(["z:0", "root:0", "y:0"], ["z", "root", "y"], np.vstack([v[2], v[4], v[1]]),
                    np.array([9.0, 7.0, 3.0], np.float32))
    sides = {"dense": dense, "lexical": lexical}
    f = select("root", sides, root_vecs, v[0], k=8, near_dup_cosine=0.95)
    by = {c.chunk_id: c for c in f.candidates}
    assert set(by) == {"x:0", "y:0", "z:0"}
    assert (f.excluded_self, f.excluded_near_dup) == (1, 1)  # root:0 counted once
    # default: a chunk's best side counts, lexical ranks weighted 1.5 (z: 1.5/61, y: 1.5/62,
    # x: 1/61), so being found by both sides earns nothing
    assert [c.chunk_id for c in f.candidates] == ["z:0", "y:0", "x:0"]
    assert by["y:0"].found_by == "both"
    assert (by["y:0"].dense_rank, by["y:0"].lexical_rank, by["y:0"].bm25) == (2, 2, 3.0)
    assert by["z:0"].found_by == "lexical" and by["z:0"].dense_rank is None
    assert np.isclose(by["z:0"].score, float(v[0] @ v[2]))  # cosine from the hit's vector
    # classic RRF sums the sides: y, 2nd on both (2/62), beats either side's first (1/61)
    summed = select("root", sides, root_vecs, v[0], k=8, near_dup_cosine=0.95,
                    lexical_weight=1.0, fusion="sum")
    assert [c.chunk_id for c in summed.candidates] == ["y:0", "x:0", "z:0"]
    assert np.isclose(summed.candidates[0].fused, 2 / 62)


def test_anchor_word_and_lexical_queries():
    text = "The guide Quorvath Elindsey held permit BX-4411, in 1893."
    # character spans of a few tokens: "Qu" and "rv" inside Quorvath, "44" inside the code,
    # the comma after it
    starts, ends = [10, 43, 47, 12], [12, 45, 48, 14]
    assert anchor_word(text, starts, ends, 0) == "Quorvath"
    assert anchor_word(text, starts, ends, 1) == "BX-4411"
    assert anchor_word(text, starts, ends, 2) == "in"
    assert anchor_word(text, starts, ends, 3) == "Quorvath"
    df = {"the": 900, "held": 40, "permit": 12, "bx": 30, "4411": 2}  # "guide": in no chunk
    assert rarest_terms("The guide held permit BX-4411", df, 2) == "4411 permit"
    assert rarest_terms("The guide", df, 2) == "the" and rarest_terms("guide", df, 2) == ""
    s = RetrievalSettings(anchor_boost=2.0, anchor_word_query=True)
    assert lexical_queries("held permit BX-4411", "BX-4411", s, df) == {
        "lexical": [("4411 permit", 1.0), ("BX-4411", 2.0)], "lexical_word": "BX-4411"}
    whole = RetrievalSettings(lexical_terms=None)
    assert lexical_queries("held permit", "", whole) == {"lexical": "held permit"}


def test_query_words_are_rare_among_other_chunks_never_the_roots_own():
    """In a [root, pool] corpus the root's own chunks are counted in the frequencies: a word
    only the root holds looks rarest by raw count but can find nothing but the root (excluded
    as self). Counted without them, the query takes words some other chunk holds; ties go to
    the word the text repeats, then to the earlier one, never to the alphabet."""
    df = {"woodruff": 3, "apollo": 5, "lunar": 5, "module": 40, "zenith": 2, "crater": 2}
    own = {"woodruff": 3, "apollo": 1, "lunar": 1, "zenith": 0, "crater": 0}
    text = "Woodruff flew the lunar module; Apollo Apollo lunar lunar lunar zenith crater"
    assert rarest_terms(text, df, 2) == "zenith crater"  # tie: first occurrence, not z < c
    assert rarest_terms(text, df, 4, own) == "zenith crater lunar apollo"
    assert "woodruff" not in rarest_terms(text, df, 10, own).split()  # only the root's


def test_own_chunks_and_their_near_copies_are_not_counted_for_the_roots_query(tmp_path):
    from lakehouse.retrieval import own_term_counts

    rng = np.random.default_rng(1)
    v = _unit(rng.normal(size=(4, DIM)))
    copy = _unit(v[0:1] + 0.01 * rng.normal(size=(1, DIM)))
    ids = ["root:0", "root:1", "other:0", "mirror:0"]
    docs = ["root", "root", "other", "mirror"]
    texts = ["Woodruff commanded the module", "the Woodruff crater", "a lunar module",
             "Woodruff commanded the module"]
    index = VectorIndex(str(tmp_path / "db"), DIM)
    index.sync({"pool/0": "v1"}, lambda k: _table(ids, docs, texts,
                                                  np.vstack([v[:3], copy])))
    own = pa.table({"doc_id": ["root", "root"], "chunk_id": ["root:0", "root:1"],
                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(v[:2].ravel()),
                                                                DIM)})
    counts = own_term_counts(index, own, 0.95)
    # the root's two chunks and the mirror's near-copy: "woodruff" is held by no other chunk
    assert counts["root"]["woodruff"] == 3 and counts["root"]["module"] == 2
    df, _ = index.document_frequency(["woodruff", "module", "crater"])
    assert rarest_terms("Woodruff module crater", df, 3, counts["root"]) == "module"


def test_anchor_word_query_is_a_third_list(tmp_path):
    index, qv = _pool(tmp_path)
    anchors = _anchors(["the expedition was led by someone who measured"], ["Quorvath"])
    plain, _ = retrieve(anchors, qv, _no_own(), index, RetrievalSettings(depth=16, context_terms=0))
    assert "source:0" not in plain["chunk_id"].to_pylist()  # the window lacks the name
    word, _ = retrieve(anchors, qv, _no_own(), index,
                       RetrievalSettings(depth=16, anchor_word_query=True,
                                         context_terms=0))
    assert "source:0" in word["chunk_id"].to_pylist()


def test_root_context_carries_the_roots_entities_into_every_query(tmp_path):
    """On by default (retrieval.context_terms 4): a window without the entity still finds
    the document that names the root's rarest words."""
    assert RetrievalSettings().context_terms > 0
    index, qv = _pool(tmp_path)
    anchors = _anchors(["the expedition was led by someone who measured"])
    root = {"root": "In 1893 our guide, Quorvath Elindsey, came back from the ice."}
    with pytest.raises(ValueError, match="root_texts"):
        retrieve(anchors, qv, _no_own(), index, RetrievalSettings(context_terms=2))
    table, _ = retrieve(anchors, qv, _no_own(), index, RetrievalSettings(context_terms=2),
                        root_texts=root)
    assert "source:0" in table["chunk_id"].to_pylist()


def test_root_context_as_its_own_list_is_searched_once_per_root(tmp_path):
    index, qv = _pool(tmp_path)
    anchors = _anchors(["the expedition was led by someone who measured",
                        "who measured the ice for the survey expedition"])
    qv2 = np.vstack([qv, qv])
    root = {"root": "In 1893 our guide, Quorvath Elindsey, came back from the ice."}
    # weight 1: the root's list ranks with the window's (at 0.5 its top hit would rank below
    # the first 20 dense hits, and the other sides fill K here)
    s = RetrievalSettings(context_terms=2, context_query="list", context_weight=1.0, depth=16)
    assert lexical_queries("held permit", "", s, {}, "quorvath elindsey") == {
        "lexical": "", "lexical_context": "quorvath elindsey"}
    table, stats = retrieve(anchors, qv2, _no_own(), index, s, root_texts=root)
    for position in (0, 1):  # both anchors get the source through the root's own list
        rows = table.filter(pa.compute.equal(table["position"], position))
        assert "source:0" in rows["chunk_id"].to_pylist()
    assert stats["candidates_found_by"]["lexical"] >= 2


def test_the_catalog_shows_which_side_served_each_anchor_per_shard(tmp_path):
    import duckdb

    from lakehouse.catalog import GROUND_TRUTH, build_catalog, parquet_relation
    from lakehouse.storage import Lake, write_parquet

    index, qv = _pool(tmp_path)
    anchors = _anchors(["the expedition was led by Quorvath Elindsey, who measured",
                        "the survey expedition measured the ice"])
    table, stats = retrieve(anchors, np.vstack([qv, qv]), _no_own(), index,
                            RetrievalSettings(depth=16, context_terms=0))
    lake = Lake(tmp_path / "lake")
    write_parquet(table, lake.shard_path("retrieval_candidates", "demo", "s0"))
    out = tmp_path / "catalog.duckdb"
    gt = tmp_path / "gt.parquet"
    write_parquet(GROUND_TRUTH.empty_table(), str(gt))
    build_catalog(lake, str(out), {"ground_truth": parquet_relation([str(gt)], GROUND_TRUTH)})
    con = duckdb.connect(str(out), read_only=True)
    row = con.execute("SELECT shard, mode, anchors, share_lexical_only, share_dense_only, "
                      "share_both, candidates, excluded_per_doc, excluded_dup_candidate "
                      "FROM retrieval_sides").fetchall()
    assert row == [("s0", "hybrid", 2, stats["share_lexical_only"], stats["share_dense_only"],
                    stats["share_both"], stats["candidates"], stats["excluded_per_doc"],
                    stats["excluded_dup_candidate"])]
