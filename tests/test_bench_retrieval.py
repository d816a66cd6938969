"""The planted retrieval benchmark: its pool is deterministic and its ground truth is real."""

from __future__ import annotations

import pytest

from bench.retrieval import PLANTED_CORPUS, PoolSpec, planted_main, pool_chunks


@pytest.fixture(scope="module")
def tokenizer():
    from models.registry import SMOLLM2, load_tokenizer

    return load_tokenizer(SMOLLM2)[0]


def test_the_pool_is_deterministic_and_its_ground_truth_points_at_real_chunks(tokenizer):
    spec = PoolSpec(chunks=600, block=200)
    a, b = pool_chunks(spec, tokenizer), pool_chunks(spec, tokenizer)
    assert a.shards == b.shards and a.truth == b.truth and a.anchors == b.anchors
    rows = [r for shard in a.shards.values() for r in shard]
    assert 600 <= len(rows) < 620 and len({r["chunk_id"] for r in rows}) == len(rows)
    assert len(a.shards) > 2  # the planted corpus and several look-alike shards
    # a bigger pool starts with the same shards: the sizes nest
    bigger = pool_chunks(PoolSpec(chunks=900, block=200), tokenizer)
    full = [k for k in a.shards if len(a.shards[k]) == len(bigger.shards[k])]
    assert full and all(a.shards[k] == bigger.shards[k] for k in full)
    text_of: dict[str, list[str]] = {}
    for r in rows:
        text_of.setdefault(r["doc_id"], []).append(r["text"])
    roles = {r["doc_id"]: r["role"] for r in rows}
    assert {r["corpus"] for r in a.shards[f"{PLANTED_CORPUS}/0"]} == {PLANTED_CORPUS}
    assert len(a.truth) == a.anchors.num_rows == 96
    for t in a.truth:
        assert roles[t["root_doc_id"]] == "root" and roles[t["source_doc_id"]] == "source"
        # the fact is in a chunk of its source, and in the oracle query of its span
        assert any(t["surface"] in text for text in text_of[t["source_doc_id"]])
    for q, src, word in zip(a.anchors["query"].to_pylist(),
                            a.anchors["source_doc_id"].to_pylist(),
                            a.anchors["anchor_word"].to_pylist(), strict=True):
        assert src in text_of and word and word in q
    surfaces = {(t["root_doc_id"], t["surface"]) for t in a.truth}
    for d, q in zip(a.anchors["doc_id"].to_pylist(), a.anchors["query"].to_pylist(),
                    strict=True):
        assert any(s in q or s.split()[0] in q for r, s in surfaces if r == d)
    # look-alikes never name a planted entity
    planted = {t["surface"] for t in a.truth if t["kind"] != "year"}
    lookalike_text = " ".join(r["text"] for r in rows if r["role"] in ("lookalike",
                                                                        "unrelated"))
    assert not any(s in lookalike_text for s in planted)


@pytest.mark.slow
def test_the_planted_benchmark_runs_at_the_smallest_size():
    records, results = planted_main([1_000], variants=False)
    (r,) = results
    assert r["spans"] == 96 and r["roots"] == 24 and 1_000 <= r["chunks"] < 1_050
    modes = r["modes"]
    assert {"dense", "lexical", "hybrid", "hybrid, LanceDB RRFReranker"} <= set(modes)
    for m in modes.values():
        assert 0 <= m["span"] <= m["root"] <= 1 and m["qps"] > 0
    # among same-template look-alikes a window's embedding misses the source that its rarest
    # words find
    assert modes["lexical"]["span"] > modes["dense"]["span"]
    assert r["both"]["rows"] == r["vector_only"]["rows"] == r["chunks"]
    names = {rec.metric for rec in records}
    assert f"recall@8 per span, hybrid, {r['chunks']:,} chunks" in names
