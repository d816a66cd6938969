"""Incremental retrieval: stored searches plus a new shard's hits equal a search of the whole
index (dense side, exact index), and the cases that force a full search do force it."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from lakehouse import retrieval_state
from lakehouse.retrieval import RetrievalSettings, retrieve
from lakehouse.vector_index import VectorIndex

DIM = 16
WORDS = ["glacier", "survey", "crevasse", "harbour", "lantern", "quorvath", "elindsey",
         "brand", "ice", "ridge", "map", "sled"]


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _shard(i: int, n: int = 12) -> pa.Table:
    rng = np.random.default_rng(100 + i)
    vecs = _unit(rng.normal(size=(n, DIM)))
    # prose-like: a few common words, and names drawn from a larger vocabulary
    texts = [" ".join([*rng.choice(WORDS, size=4), *(f"name{x}" for x in
                                                    rng.integers(0, 150, size=3))])
             for _ in range(n)]
    ids = [f"d{i}_{j // 3}:{j % 3}" for j in range(n)]
    return pa.table({"chunk_id": ids, "doc_id": [c.split(":")[0] for c in ids],
                     "corpus": ["pool"] * n, "text": texts,
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(vecs.ravel()), DIM)})


def _index(path, shards: list[int]) -> VectorIndex:
    index = VectorIndex(str(path), DIM)
    index.sync({f"pool/{i}": f"v{i}" for i in shards}, lambda k: _shard(int(k.split("/")[1])))
    return index


def _anchors(n: int = 10):
    rng = np.random.default_rng(7)
    queries = [" ".join([*rng.choice(WORDS, size=3), *(f"name{x}" for x in
                                                      rng.integers(0, 150, size=2))])
               for _ in range(n)]
    anchors = pa.table({"doc_id": [f"root{a % 3}" for a in range(n)],
                        "position": list(range(n)), "query": queries})
    own = pa.table({"doc_id": ["root0"], "chunk_id": ["root0:0"],
                    "vector": pa.FixedSizeListArray.from_arrays(
                        pa.array(_unit(rng.normal(size=(1, DIM))).ravel()), DIM)})
    return anchors, _unit(rng.normal(size=(n, DIM))), own


def _run(index, state, settings, roots):
    anchors, qv, own = _anchors()
    up, new_state = retrieval_state.update(state, anchors, qv, own, index, settings, roots,
                                           "emb")
    table, _ = retrieve(anchors, qv, own, index, settings, roots, searched=up.searched)
    return up, new_state, table


def _same(a: pa.Table, b: pa.Table) -> None:
    """The same rows; cosines to 1e-5: a matrix product over one shard's vectors and one over
    the whole index (or one query against a batch) sum in another order (BLAS kernels and
    blocking differ by shape), which moves the last bits."""
    cols = ["doc_id", "position", "rank", "chunk_id", "found_by", "dense_rank"]
    assert a.select(cols).to_pylist() == b.select(cols).to_pylist()
    np.testing.assert_allclose(a["score"].to_numpy(), b["score"].to_numpy(), atol=1e-5)


def test_a_new_shard_merged_into_stored_dense_searches_equals_a_full_search(tmp_path):
    settings = RetrievalSettings(mode="dense", k=4, depth=6)
    index = _index(tmp_path / "db", [0, 1, 2, 3])
    up, state, _ = _run(index, None, settings, None)
    assert up.kind == "full" and up.reason == "no stored searches"
    retrieval_state.save(state, str(tmp_path / "state.parquet"))
    stored = retrieval_state.load(str(tmp_path / "state.parquet"), DIM)
    index.sync({f"pool/{i}": f"v{i}" for i in range(5)}, lambda k: _shard(int(k[-1])))
    up, state, merged = _run(index, stored, settings, None)
    assert up.kind == "incremental" and up.added == ["pool/4"] and up.removed == []
    scratch = retrieve(*_anchors()[:2], _anchors()[2], index, settings)[0]
    _same(merged, scratch)
    assert any(c.startswith("d4_") for c in merged["chunk_id"].to_pylist())  # it mattered
    # a removed shard: its hits leave, the lists that lost one are searched again in full
    index.sync({f"pool/{i}": f"v{i}" for i in (0, 2, 3, 4)}, lambda k: _shard(int(k[-1])))
    up, _, merged = _run(index, state, settings, None)
    assert up.removed == ["pool/1"] and up.lists_researched > 0
    _same(merged, retrieve(*_anchors()[:2], _anchors()[2], index, settings)[0])


def test_hybrid_update_equals_a_full_search(tmp_path):
    """Dense lists merged, lexical searched again with today's frequencies: the same
    candidates as a search of the whole index, and the new shard's chunks among them."""
    settings = RetrievalSettings(mode="hybrid", k=4, depth=6)
    roots = {f"root{i}": f"ice ridge name{7 * i} name{11 * i + 3}" for i in range(3)}
    index = _index(tmp_path / "db", list(range(10)))
    _, state, before = _run(index, None, settings, roots)
    index.sync({f"pool/{i}": f"v{i}" for i in range(11)},
               lambda k: _shard(int(k.split("/")[1])))
    up, _, merged = _run(index, state, settings, roots)
    assert up.kind == "incremental" and up.added == ["pool/10"]
    _same(merged, retrieve(*_anchors()[:2], _anchors()[2], index, settings, roots)[0])
    assert merged["chunk_id"].to_pylist() != before["chunk_id"].to_pylist()


def test_what_forces_a_full_search(tmp_path):
    settings = RetrievalSettings(mode="dense", k=4, depth=6)
    index = _index(tmp_path / "db", [0, 1, 2, 3])
    _, state, _ = _run(index, None, settings, None)
    index.sync({f"pool/{i}": f"v{i}" for i in range(5)}, lambda k: _shard(int(k[-1])))
    up, _, _ = _run(index, state, settings.model_copy(update={"refresh": "full"}), None)
    assert up.kind == "full" and up.reason == "retrieval.refresh: full"
    up, _, _ = _run(index, state, settings.model_copy(update={"k": 5}), None)
    assert up.kind == "full" and "settings changed" in up.reason
