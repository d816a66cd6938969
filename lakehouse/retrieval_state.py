"""Incremental retrieval: a root shard's dense searches kept, and a new pool shard merged in.

When the pool grows by a shard, a root's dense hit lists can change only where a chunk of
that shard enters them. So ``retrieval_candidates`` stores, beside its table, every dense
hit list it searched (per distinct query, the top ``fetch`` hits) with the index's shard
versions at that time. The next run of the same root shard, if its anchors, own chunks and
settings are unchanged, searches only the shards added or changed since
(``VectorIndex.search_shards``), merges those hits into each stored list by score, drops
hits of removed or changed shards, and re-runs exclusion and fusion (``retrieval.select``).

What that gives, side by side with a search of the whole index:

* **dense, exact index** (below ``index.exact_below`` rows): the same lists, so the same
  candidates and ranks (cosines to float rounding). A list that lost a hit to a removed
  shard is searched again in full (the stored top ``fetch`` does not hold what came next).
* **dense, ANN index**: the stored lists were ANN answers and the new shard's hits come
  from the same index filtered to it, so a merged list differs from a fresh ANN search only
  where either missed a neighbour.
* **lexical**: searched again in full, with today's document frequencies. BM25 moves every
  score when documents are added (IDF and the mean length), so merged BM25 lists drift:
  measured on bench/incremental's Wikipedia lake, frozen lists and query words changed the
  top-K of half the anchors after one added shard. A BM25 query is an inverted-index lookup
  (no vectors, no model), so searching it again costs little beside verification.

So no statistic is frozen. A full search runs when the state is missing or was made for
other inputs, and when ``retrieval.refresh`` is ``full``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from lakehouse.retrieval import RetrievalSettings, Searched, fetch_depth, search_sides
from lakehouse.storage import exists, read_parquet, write_parquet
from lakehouse.vector_index import Hits, VectorIndex

SCHEMA = pa.schema([("query", pa.int64()),  # row in RetrievalState.dense
                    ("rank", pa.int32()), ("chunk_id", pa.string()), ("doc_id", pa.string()),
                    ("score", pa.float32())])


@dataclass
class RetrievalState:
    """What a root shard's last retrieval searched, and against which index."""

    inputs: str  # digest of anchors, query vectors, own chunks, root texts and settings
    shards: dict[str, str]  # the index's shard_key -> shard_sha when it was searched
    dense: list[Hits]  # per distinct dense query, its top ``fetch`` hits
    dense_of: list[int]  # per anchor, its row in ``dense``


@dataclass
class Update:
    """How a root shard's searches were brought up to date."""

    searched: Searched
    kind: str  # "full" or "incremental"
    reason: str  # why full, or what was merged
    added: list[str]
    removed: list[str]
    lists_researched: int = 0  # dense lists searched again in full (a removed shard's hit)


def inputs_digest(anchors: pa.Table, query_vectors: np.ndarray | None, own_chunks: pa.Table,
                  settings: RetrievalSettings, root_texts: Mapping[str, str] | None,
                  embedder: str) -> str:
    """A hash of everything the searches depend on besides the index."""
    h = hashlib.sha256()
    cols = [c for c in ("doc_id", "position", "query", "anchor_word") if c in
            anchors.column_names]
    for c in cols:
        h.update(json.dumps(anchors[c].to_pylist()).encode())
    if query_vectors is not None:
        h.update(np.ascontiguousarray(query_vectors, np.float32).tobytes())
    for c in ("doc_id", "chunk_id"):
        if c in own_chunks.column_names:
            h.update(json.dumps(own_chunks[c].to_pylist()).encode())
    if own_chunks.num_rows:
        h.update(own_chunks["vector"].combine_chunks().flatten().to_numpy(
            zero_copy_only=False).astype(np.float32).tobytes())
    h.update(json.dumps(sorted((root_texts or {}).items())).encode())
    h.update(settings.model_dump_json(exclude={"refresh"}).encode())
    h.update(embedder.encode())
    return h.hexdigest()[:32]


def save(state: RetrievalState, path: str) -> str:
    """The state as one Parquet file (hit rows; the rest in its schema metadata), atomic."""
    rows: dict[str, list] = {f.name: [] for f in SCHEMA}
    for i, h in enumerate(state.dense):
        for r, (c, d, x) in enumerate(zip(h.chunk_ids, h.doc_ids, h.scores, strict=True)):
            for key, v in zip(SCHEMA.names, (i, r, c, d, float(x)), strict=True):
                rows[key].append(v)
    meta = {"inputs": state.inputs, "shards": state.shards, "dense_of": state.dense_of,
            "n_dense": len(state.dense)}
    table = pa.table({f.name: pa.array(rows[f.name], f.type) for f in SCHEMA}, schema=SCHEMA)
    table = table.replace_schema_metadata({"retrieval_state": json.dumps(meta)})
    return write_parquet(table, path)


def load(path: str, dim: int) -> RetrievalState | None:
    """The stored state, or None (missing, or written by another layout)."""
    if not exists(path):
        return None
    table = read_parquet(path)
    raw = (table.schema.metadata or {}).get(b"retrieval_state")
    if raw is None or table.schema.names != SCHEMA.names:
        return None
    meta = json.loads(raw)
    lists: dict[int, list] = {}
    for i, _, c, d, x in zip(*(table[n].to_pylist() for n in SCHEMA.names), strict=True):
        lists.setdefault(i, []).append((c, d, x))
    dense = []
    for i in range(meta["n_dense"]):
        got = lists.get(i, [])
        dense.append(Hits([g[0] for g in got], [g[1] for g in got],
                          np.asarray([g[2] for g in got], np.float32),
                          np.zeros((len(got), dim), np.float32)))  # vectors: see update
    return RetrievalState(meta["inputs"], meta["shards"], dense, meta["dense_of"])


def _merge(old: Hits, new: Hits, rows: Mapping[str, tuple[str, str, np.ndarray]],
           gone: set[str], fetch: int) -> tuple[Hits, bool]:
    """``old`` without hits of ``gone`` shards (or no longer in the index) merged with
    ``new`` by score (ties by chunk id), top ``fetch``; and whether ``old`` lost a hit."""
    keep = [(c, d, float(x), rows[c][2]) for c, d, x in
            zip(old.chunk_ids, old.doc_ids, old.scores, strict=True)
            if c in rows and rows[c][1] not in gone]
    lost = len(keep) < len(old.chunk_ids)
    have = {k[0] for k in keep}
    keep += [(c, d, float(x), v) for c, d, x, v in
             zip(new.chunk_ids, new.doc_ids, new.scores, new.vectors, strict=True)
             if c not in have]
    keep.sort(key=lambda k: (-k[2], k[0]))
    keep = keep[:fetch]
    dim = old.vectors.shape[1]
    return Hits([k[0] for k in keep], [k[1] for k in keep],
                np.asarray([k[2] for k in keep], np.float32),
                np.stack([k[3] for k in keep]) if keep else np.zeros((0, dim), np.float32)
                ), lost


def update(state: RetrievalState | None, anchors: pa.Table, query_vectors: np.ndarray | None,
           own_chunks: pa.Table, index: VectorIndex, settings: RetrievalSettings,
           root_texts: Mapping[str, str] | None, embedder: str
           ) -> tuple[Update, RetrievalState]:
    """This root shard's searches against the index as it is now: the dense side merged into
    ``state`` where that is sound (see the module docstring), else searched in full; the
    lexical side searched in full; and the state to store for the next run."""
    inputs = inputs_digest(anchors, query_vectors, own_chunks, settings, root_texts, embedder)
    now = index.shard_versions()
    old = state.shards if state is not None else {}
    added = sorted(k for k in now if old.get(k) != now[k])
    removed = sorted(k for k in old if now.get(k) != old[k])
    reason = ""
    if state is None:
        reason = "no stored searches"
    elif state.inputs != inputs:
        reason = "anchors, own chunks or retrieval settings changed"
    elif settings.refresh == "full":
        reason = "retrieval.refresh: full"
    if reason or settings.mode == "lexical":
        searched = search_sides(anchors, query_vectors, own_chunks, index, settings,
                                root_texts)
        return (Update(searched, "full", reason or "lexical mode: nothing stored", added,
                       removed),
                RetrievalState(inputs, now, searched.dense, searched.dense_of))
    assert state is not None
    fetch = fetch_depth(own_chunks, settings)
    rows = index.rows(sorted({c for h in state.dense for c in h.chunk_ids}))
    gone = set(removed)
    researched = 0
    dense = list(state.dense)
    t0 = time.perf_counter()
    if state.dense:
        first: dict[int, int] = {}
        for a, j in enumerate(state.dense_of):
            first.setdefault(j, a)
        qv = np.asarray(query_vectors, np.float32)[[first[j] for j in range(len(dense))]]
        new = index.search_shards(qv, fetch, added, batch=settings.batch_size)
        for j, (old_hits, hits) in enumerate(zip(state.dense, new, strict=True)):
            dense[j], lost = _merge(old_hits, hits, rows, gone, fetch)
            if lost:
                dense[j] = index.search(qv[j:j + 1], fetch, batch=settings.batch_size)[0]
                researched += 1
    dense_s = time.perf_counter() - t0
    searched = search_sides(anchors, query_vectors, own_chunks, index, settings, root_texts,
                            dense=(dense, state.dense_of))
    searched.dense_s = dense_s
    what = (f"dense: {len(added)} shards added or changed searched, {len(removed)} removed "
            f"or changed dropped, {researched} lists searched again in full; lexical: in full")
    return (Update(searched, "incremental", what, added, removed, researched),
            RetrievalState(inputs, now, dense, state.dense_of))
