"""Incremental retrieval: a root shard's searches kept, and a new pool shard merged into them.

When the pool grows by a shard, every root's candidates can change only where a chunk of
that shard enters a hit list. So ``retrieval_candidates`` stores, beside its table, every
hit list it searched (``Searched``: per side, per distinct query, the top ``fetch`` hits),
with the index's shard versions at that time. The next run of the same root shard, if its
anchors, own chunks and settings are unchanged, searches only the shards added or changed
since (``VectorIndex.search_shards``: exact cosine over their rows; ``search_lexical`` with
a shard filter), merges those hits into each stored list by score, drops hits of removed or
changed shards, and re-runs exclusion and fusion (``retrieval.select``) on the merged lists.

What that gives, side by side with a search of the whole index:

* **dense, exact index** (below ``index.exact_below`` rows): the same lists, so the same
  candidates, ranks and scores. A list that lost a hit to a removed shard is searched again
  in full (the stored top ``fetch`` does not hold what came after it).
* **dense, ANN index**: the stored lists were ANN answers and the new shard's hits are exact,
  so the merged list is at least as good as a fresh ANN search; it may differ from one.
* **lexical**: frozen statistics. The words of each query were chosen by the pool's document
  frequencies at the last full search, and the stored hits keep the BM25 scores of that
  index; the new shard's hits are scored with today's. A full search would choose by today's
  frequencies and rescore every hit. bench/incremental measures how many anchors' top-K
  differ from a full search after each added shard.

A full search (which refreshes the frozen statistics) runs when the state is missing or was
made for other inputs, when ``retrieval.refresh`` is ``full``, and when the index has grown
by more than ``retrieval.refresh_growth`` of the rows it had at the last full search.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from lakehouse.retrieval import RetrievalSettings, Searched, fetch_depth, search_sides
from lakehouse.storage import exists, read_parquet, write_parquet
from lakehouse.vector_index import Hits, LexicalQuery, VectorIndex

SCHEMA = pa.schema([("list", pa.string()),  # "dense" or a lexical list name
                    ("query", pa.int64()),  # row in Searched.dense / Searched.lexical
                    ("rank", pa.int32()), ("chunk_id", pa.string()), ("doc_id", pa.string()),
                    ("score", pa.float32())])


@dataclass
class RetrievalState:
    """What a root shard's last retrieval searched, and against which index."""

    inputs: str  # digest of anchors, query vectors, own chunks, root texts and settings
    shards: dict[str, str]  # the index's shard_key -> shard_sha when it was searched
    full_rows: int  # index rows at the last full search (frozen statistics' pool size)
    searched: Searched


@dataclass
class Update:
    """How a root shard's searches were brought up to date."""

    searched: Searched
    kind: str  # "full" or "incremental"
    reason: str  # why full, or what was merged
    added: list[str]
    removed: list[str]
    lists_researched: int = 0  # lists searched again in full (a removed shard's hit lost)


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
    h.update(settings.model_dump_json(exclude={"refresh", "refresh_growth"}).encode())
    h.update(embedder.encode())
    return h.hexdigest()[:32]


def save(state: RetrievalState, path: str) -> str:
    """The state as one Parquet file (hit rows; the rest in its schema metadata), atomic."""
    s = state.searched
    rows: dict[str, list] = {f.name: [] for f in SCHEMA}
    lists = [("dense", i, h) for i, h in enumerate(s.dense)] + [
        (name, i, h) for i, d in enumerate(s.lexical) for name, h in sorted(d.items())]
    for name, i, h in lists:
        for r, (c, d, x) in enumerate(zip(h.chunk_ids, h.doc_ids, h.scores, strict=True)):
            for key, v in zip(SCHEMA.names, (name, i, r, c, d, float(x)), strict=True):
                rows[key].append(v)
    meta = {"inputs": state.inputs, "shards": state.shards, "full_rows": state.full_rows,
            "fetch": s.fetch, "dense_of": s.dense_of, "lexical_of": s.lexical_of,
            "lexical_queries": s.lexical_queries, "n_dense": len(s.dense),
            "lexical_lists": [sorted(d) for d in s.lexical]}
    table = pa.table({f.name: pa.array(rows[f.name], f.type) for f in SCHEMA}, schema=SCHEMA)
    table = table.replace_schema_metadata({"retrieval_state": json.dumps(meta)})
    return write_parquet(table, path)


def _tuples(q) -> LexicalQuery:
    """A lexical query back from JSON (a list of [text, boost] pairs, or a string)."""
    return q if isinstance(q, str) else [(str(t), float(b)) for t, b in q]


def load(path: str, dim: int) -> RetrievalState | None:
    """The stored state, or None (missing, or written by another layout)."""
    if not exists(path):
        return None
    table = read_parquet(path)
    raw = (table.schema.metadata or {}).get(b"retrieval_state")
    if raw is None or table.schema.names != SCHEMA.names:
        return None
    meta = json.loads(raw)
    empty = Hits([], [], np.zeros(0, np.float32), np.zeros((0, dim), np.float32))
    lists: dict[tuple[str, int], list] = {}
    for name, i, _, c, d, x in zip(*(table[n].to_pylist() for n in SCHEMA.names),
                                   strict=True):
        lists.setdefault((name, i), []).append((c, d, x))

    def hits(name: str, i: int) -> Hits:
        got = lists.get((name, i))
        if not got:
            return empty
        return Hits([g[0] for g in got], [g[1] for g in got],
                    np.asarray([g[2] for g in got], np.float32),
                    np.zeros((len(got), dim), np.float32))  # vectors: filled in by update

    dense = [hits("dense", i) for i in range(meta["n_dense"])]
    lexical = [{name: hits(name, i) for name in names}
               for i, names in enumerate(meta["lexical_lists"])]
    queries = [{k: _tuples(v) for k, v in d.items()} for d in meta["lexical_queries"]]
    searched = Searched(dense, meta["dense_of"], lexical, meta["lexical_of"], queries,
                        meta["fetch"])
    return RetrievalState(meta["inputs"], meta["shards"], meta["full_rows"], searched)


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
    """This root shard's searches against the index as it is now: merged into ``state``
    where that is sound (see the module docstring), else searched in full; and the state to
    store for the next run."""
    inputs = inputs_digest(anchors, query_vectors, own_chunks, settings, root_texts, embedder)
    now = {k: sha for k, (sha, _) in index.shard_state().items()}
    rows_now = index.count()
    reason = ""
    if state is None:
        reason = "no stored searches"
    elif state.inputs != inputs:
        reason = "anchors, own chunks or retrieval settings changed"
    elif settings.refresh == "full":
        reason = "retrieval.refresh: full"
    elif rows_now > state.full_rows * (1 + settings.refresh_growth):
        reason = (f"index grew from {state.full_rows} to {rows_now} rows (> "
                  f"retrieval.refresh_growth {settings.refresh_growth}): statistics refreshed")
    if reason:
        searched = search_sides(anchors, query_vectors, own_chunks, index, settings,
                                root_texts)
        fresh = RetrievalState(inputs, now, rows_now, searched)
        old = state.shards if state is not None else {}
        return (Update(searched, "full", reason, sorted(k for k in now if old.get(k) != now[k]),
                       sorted(k for k in old if now.get(k) != old[k])), fresh)
    assert state is not None
    added = sorted(k for k in now if state.shards.get(k) != now[k])
    removed = sorted(k for k in state.shards if now.get(k) != state.shards[k])
    s = state.searched
    fetch = fetch_depth(own_chunks, settings)
    stored = [h for h in s.dense] + [h for d in s.lexical for h in d.values()]
    rows = index.rows(sorted({c for h in stored for c in h.chunk_ids}))
    gone = set(removed)
    researched = 0
    # dense: the stored lists' queries, in the order Searched.dense holds them
    dense = list(s.dense)
    if s.dense:
        first = {}
        for a, j in enumerate(s.dense_of):
            first.setdefault(j, a)
        qv = np.asarray(query_vectors, np.float32)[[first[j] for j in range(len(s.dense))]]
        new = index.search_shards(qv, fetch, added)
        for j, (old, hits) in enumerate(zip(s.dense, new, strict=True)):
            dense[j], lost = _merge(old, hits, rows, gone, fetch)
            if lost:
                dense[j] = index.search(qv[j:j + 1], fetch, batch=settings.batch_size)[0]
                researched += 1
    lexical = [dict(d) for d in s.lexical]
    for name in sorted({n for d in s.lexical for n in d}):
        at = [i for i, d in enumerate(s.lexical) if name in d]
        qs = [s.lexical_queries[i][name] for i in at]
        new = index.search_lexical(qs, fetch, shards=added) if added else [
            Hits([], [], np.zeros(0, np.float32), np.zeros((0, index.dim), np.float32))
            for _ in qs]
        for i, q, hits in zip(at, qs, new, strict=True):
            lexical[i][name], lost = _merge(s.lexical[i][name], hits, rows, gone, fetch)
            if lost:
                lexical[i][name] = index.search_lexical([q], fetch)[0]
                researched += 1
    merged = Searched(dense, s.dense_of, lexical, s.lexical_of, s.lexical_queries, fetch)
    what = (f"{len(added)} shards added or changed, {len(removed)} removed or changed; "
            f"{researched} lists searched again in full")
    return (Update(merged, "incremental", what, added, removed, researched),
            RetrievalState(inputs, now, state.full_rows, merged))
