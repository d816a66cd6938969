"""The LanceDB index of pool chunks (vectors and text): incremental by shard, exact when small.

Every row carries the shard it came from (``shard_key``) and the hash of that shard's
embeddings file (``shard_sha``), so the table itself says which shards it holds and in which
version; ``sync`` adds new shards, replaces changed ones and drops removed ones by comparing
that state with the lake. Each LanceDB ``add`` and ``delete`` is one atomic commit, so a
killed sync leaves the table consistent per shard and the next sync finishes the job.

Below ``exact_below`` rows the index is searched exactly (one batched matrix product over the
vectors in memory); above it an ANN index of the configured kind is trained with parameters
derived from the row count:

* ``ivf_hnsw_sq`` (default): one HNSW graph over 8-bit scalar-quantized vectors per million
  rows. Highest recall per query time (bench.retrieval: recall@10 0.99 at 200K vectors).
* ``ivf_sq``: IVF lists of 8-bit scalar-quantized vectors; builds several times faster than
  HNSW and answers fastest at a little less recall.
* ``ivf_pq``: IVF lists of product-quantized codes (dim/4 bytes a vector, 4x smaller than SQ)
  for pools whose index must stay small; it needs re-ranking on the full vectors
  (``refine_factor``) to reach a useful recall, which costs most of its speed.

The same table holds each chunk's text under LanceDB's native full-text index (BM25 over an
inverted index, ``fts``), so a lexical query can match an invented name or a code that a
sentence embedding blurs into every window of the same kind. A sync merges new rows into it
(``optimize``: same scores as a rebuild, bench.retrieval times both) and masks removed ones.
BM25 from it is exact at any size: the index scores every row holding a query term, with the
statistics of the rows the table holds (after each sync's ``optimize`` deleted rows no longer
count; between a delete and an optimize they would). Its only approximation is the stemming
and stop-word list of its tokenizer (``fts_stem``, ``fts_stop_words``).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import lancedb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

TABLE = "chunks"
TERMS = "terms"  # per shard: document frequency of every word of its chunks' text
# A word, as the full-text index's "simple" tokenizer splits text: letters and digits.
TERM_PATTERN = r"[^\p{L}\p{N}]+"  # RE2 (pyarrow); the separators between words
_TERM_RE = re.compile(r"[^\W_]+")  # the same words, for Python strings


def terms_of(text: str) -> list[str]:
    """The lower-cased words of ``text``, as ``term_frequencies`` counts them."""
    return _TERM_RE.findall(text.lower())


TERMS_SCHEMA = pa.schema([("shard_key", pa.string()), ("shard_sha", pa.string()),
                          ("term", pa.string()),  # lower-cased; "" marks the shard itself
                          ("df", pa.int64())])  # chunks holding the term ("": all chunks)


def term_frequencies(texts: pa.Array | pa.ChunkedArray) -> pa.Table:
    """``term``, ``df``: in how many of ``texts`` each lower-cased word occurs.

    The BM25 index keeps these statistics inside and does not expose them; the lexical query
    needs them to tell a rare word (an invented name, a code) from the words every document
    of a template shares.
    """
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    texts = pc.fill_null(texts.cast(pa.large_string()), "")
    words = pc.split_pattern_regex(pc.utf8_lower(texts), TERM_PATTERN)
    flat = pc.list_flatten(words)
    rows = pc.list_parent_indices(words).to_numpy().astype(np.int64)
    codes = pc.dictionary_encode(flat)
    vocab = codes.dictionary
    ids = codes.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    # one (row, word) pair per chunk holding the word, then chunks per word
    pairs = np.unique(rows * len(vocab) + ids) if len(ids) else np.zeros(0, np.int64)
    df = np.bincount(pairs % max(len(vocab), 1), minlength=len(vocab))
    keep = (df > 0) & pc.not_equal(vocab, "").to_numpy(zero_copy_only=False)
    return pa.table({"term": vocab.cast(pa.string()).filter(pa.array(keep)),
                     "df": pa.array(df[keep], pa.int64())})


def index_schema(dim: int) -> pa.Schema:
    """Columns of the index table; ``load`` in ``sync`` supplies all but the two shard ones."""
    return pa.schema([("chunk_id", pa.string()), ("doc_id", pa.string()),
                      ("corpus", pa.string()), ("shard_key", pa.string()),
                      ("shard_sha", pa.string()),
                      ("text", pa.large_string()),  # the chunk's text, under the FTS index
                      ("vector", pa.list_(pa.float32(), dim))])


ANN_KINDS = ("ivf_hnsw_sq", "ivf_sq", "ivf_pq")
# LanceDB's name for each kind in ``list_indices``
_LANCE_TYPES = {"ivf_hnsw_sq": "IvfHnswSq", "ivf_sq": "IvfSq", "ivf_pq": "IvfPq"}
HNSW_ROWS_PER_PARTITION = 1_000_000  # one graph per this many rows bounds build memory
MAX_DELTA_INDICES = 8  # HNSW delta graphs (one per sync that adds rows) before retraining


class IndexSettings(BaseModel):
    """Settings of the chunk index (the ``index`` block of the pipeline config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["ivf_hnsw_sq", "ivf_sq", "ivf_pq"] = "ivf_hnsw_sq"  # ANN above exact_below
    exact_below: int = Field(50_000, ge=0)  # rows; below this, dense search is exact
    num_partitions: int | None = Field(None, gt=0)  # IVF lists; default by kind and rows
    num_sub_vectors: int | None = Field(None, gt=0)  # ivf_pq: codes per vector; default dim/4
    nprobes: int | None = Field(None, gt=0)  # lists searched per query; default by kind
    ef: int | None = Field(None, gt=0)  # ivf_hnsw_sq: graph candidate list; default max(40, 4k)
    refine_factor: int | None = Field(None, ge=1)  # re-rank refine_factor * k hits on the
    # full vectors; default 3 for ivf_pq, none for the SQ kinds (their recall needs none)
    fts: bool = True  # full-text (BM25) index on the chunk text: lexical and hybrid retrieval
    fts_stem: bool = True  # English stemming of indexed and query words
    fts_stop_words: bool = True  # drop English stop words from indexed and query text
    fts_concurrency: int = Field(8, gt=0)  # lexical queries in flight at once


IndexParams = IndexSettings  # the name callers used before the settings moved here


@dataclass(frozen=True)
class AnnPlan:
    """Build and search parameters of the ANN index for one table size."""

    kind: str
    num_partitions: int
    num_sub_vectors: int | None  # ivf_pq only
    nprobes: int
    refine_factor: int | None

    def ef(self, k: int, params: IndexParams) -> int | None:
        if self.kind != "ivf_hnsw_sq":
            return None
        return params.ef or max(40, 4 * k)


def ann_plan(n_rows: int, dim: int, params: IndexParams) -> AnnPlan:
    """The ANN parameters for a table of ``n_rows`` vectors (explicit settings win).

    IVF kinds: ~sqrt(rows) lists, of which ~2.5% (SQ) or ~1% plus re-ranking (PQ) are probed
    per query. HNSW: one graph per million rows, and the nearest few of them probed.
    """
    kind = params.kind
    if kind == "ivf_hnsw_sq":
        default_parts = max(1, math.ceil(n_rows / HNSW_ROWS_PER_PARTITION))
    else:
        default_parts = int(min(4096, max(1, round(math.sqrt(n_rows)))))
    parts = params.num_partitions or default_parts
    sub = None
    if kind == "ivf_pq":
        sub = params.num_sub_vectors or next(
            d for d in (dim // 4, dim // 8, dim // 2, 1) if d >= 1 and dim % d == 0)
    if kind == "ivf_hnsw_sq":
        default_probes = min(parts, 1 + parts // 4)
    elif kind == "ivf_sq":
        default_probes = max(2, math.ceil(parts / 40))
    else:
        default_probes = max(2, math.ceil(parts * 0.01))
    refine = params.refine_factor
    if refine is None and kind == "ivf_pq":
        refine = 3
    return AnnPlan(kind, parts, sub, min(parts, params.nprobes or default_probes), refine)


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    rows: int = 0
    index: str = "exact"
    fts: str = "none"  # none | built (from scratch) | merged (incremental) | current
    rebuilt: bool = False  # the table lacked a column of index_schema and was started over
    without_text: list[str] = field(default_factory=list)  # shards whose load gave no text
    vector_s: float = 0.0  # seconds spent on the vector index (training or merging)
    fts_s: float = 0.0  # seconds spent on the full-text index
    terms_s: float = 0.0  # seconds spent counting and storing document frequencies


@dataclass
class Hits:
    """Top hits of one query, best first."""

    chunk_ids: list[str]
    doc_ids: list[str]
    scores: np.ndarray  # cosine similarity
    vectors: np.ndarray  # [k, dim] float32


def _scan(table, columns: list[str]) -> pa.Table:
    """Every row of ``columns`` (a plain scan: no vector query, no limit)."""
    return table.search().select(columns).limit(None).to_arrow()


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# A lexical query: a text matched word by word (any word may match, BM25 scores them), or
# several such texts, each with a boost, whose scores add up (e.g. the window plus the
# anchor's own word weighted up).
LexicalQuery = str | Sequence[tuple[str, float]]


class VectorIndex:
    def __init__(self, uri: str, dim: int, params: IndexSettings | None = None,
                 storage_options: Mapping[str, str] | None = None):
        """``uri``: a local folder or an object-store URL (``s3://bucket/index``), with the
        ``storage_options`` LanceDB takes for it (endpoint, keys, region, ``allow_http``)."""
        self.uri, self.dim = uri, dim
        self.params = params if params is not None else IndexSettings()
        self.storage_options = dict(storage_options) if storage_options else None
        self.db = lancedb.connect(uri, storage_options=self.storage_options)
        self._exact_cache: tuple[int, pa.Table, np.ndarray] | None = None
        self._df_cache: tuple[int, dict[str, int], int] | None = None
        self._async = None  # (table version, AsyncTable) for lexical search

    def _table(self, create: bool = False):
        if TABLE in self.db.table_names():
            return self.db.open_table(TABLE)
        if not create:
            return None
        return self.db.create_table(TABLE, schema=index_schema(self.dim))

    def _current_table(self, report: SyncReport):
        """The table, started over when it lacks a column of ``index_schema`` (a table written
        before the text column existed): its shards are then all loaded again."""
        table = self._table()
        if table is not None and not set(index_schema(self.dim).names) <= set(
                table.schema.names):
            self.db.drop_table(TABLE)
            if TERMS in self.db.table_names():
                self.db.drop_table(TERMS)
            report.rebuilt = True
            table = None
        return table if table is not None else self._table(create=True)

    def count(self) -> int:
        table = self._table()
        return 0 if table is None else table.count_rows()

    def shard_versions(self) -> dict[str, str]:
        """shard_key -> shard_sha, read from the term table's one mark row per shard (a seek
        on its B-tree) when there is one, else from a scan of the chunk table's shard
        columns (``shard_state``): what an incremental retrieval compares with its state."""
        terms = self._terms_table() if self.params.fts else None
        if terms is not None and terms.count_rows():
            marks = terms.search().where("term = ''").select(
                ["shard_key", "shard_sha"]).limit(None).to_arrow()
            return dict(zip(marks["shard_key"].to_pylist(), marks["shard_sha"].to_pylist(),
                            strict=True))
        return {k: sha for k, (sha, _) in self.shard_state().items()}

    def shard_state(self) -> dict[str, tuple[str, int]]:
        """shard_key -> (shard_sha, rows) as stored in the table."""
        table = self._table()
        if table is None or table.count_rows() == 0:
            return {}
        t = _scan(table, ["shard_key", "shard_sha"])
        agg = t.group_by(["shard_key", "shard_sha"]).aggregate([("shard_key", "count")])
        state: dict[str, tuple[str, int]] = {}
        for row in agg.to_pylist():
            key = row["shard_key"]
            if key in state:  # two versions of one shard: mark inconsistent, forces replace
                state[key] = ("<mixed>", state[key][1] + row["shard_key_count"])
            else:
                state[key] = (row["shard_sha"], row["shard_key_count"])
        return state

    def sync(self, wanted: Mapping[str, str], load: Callable[[str], pa.Table],
             expected_rows: Mapping[str, int] | None = None) -> SyncReport:
        """Make the table hold exactly the shards in ``wanted`` (key -> sha) at those versions.

        ``load(key)`` returns that shard's rows (``index_schema`` columns but the two shard
        columns). ``expected_rows`` (key -> rows) catches a shard that was half-deleted.
        """
        report = SyncReport()
        table = self._current_table(report)
        state = self.shard_state()
        terms = self._terms_table(create=self.params.fts)
        for key in sorted(set(state) - set(wanted)):
            table.delete(f"shard_key = {_quote(key)}")
            report.removed.append(key)
        for key in sorted(wanted):
            sha = wanted[key]
            have = state.get(key)
            rows_ok = expected_rows is None or have is None or have[1] == expected_rows[key]
            if have is not None and have[0] == sha and rows_ok:
                continue
            if have is not None:
                table.delete(f"shard_key = {_quote(key)}")
                report.replaced.append(key)
            else:
                report.added.append(key)
            data = load(key)
            if "text" not in data.column_names:
                report.without_text.append(key)
                data = data.append_column("text", pa.nulls(data.num_rows, pa.large_string()))
            if data.num_rows:
                n = data.num_rows
                data = data.append_column("shard_key", pa.array([key] * n, pa.string()))
                data = data.append_column("shard_sha", pa.array([sha] * n, pa.string()))
                table.add(data.select(index_schema(self.dim).names).cast(
                    index_schema(self.dim)))
            if terms is not None:
                start = time.perf_counter()
                self._put_terms(terms, key, sha, data)
                report.terms_s += time.perf_counter() - start
        if terms is not None:
            start = time.perf_counter()
            self._repair_terms(terms, wanted, load)
            report.terms_s += time.perf_counter() - start
        report.rows = table.count_rows()
        changed = bool(report.added or report.replaced or report.removed)
        start = time.perf_counter()
        report.index = self._maintain_index(table, report.rows) if changed \
            else self.index_kind()
        report.vector_s = time.perf_counter() - start
        start = time.perf_counter()
        report.fts = self._maintain_fts(table, changed)
        report.fts_s = time.perf_counter() - start
        if terms is not None and changed:
            start = time.perf_counter()
            self._maintain_terms(terms)
            report.terms_s += time.perf_counter() - start
        if changed and report.rows and not any(
                "chunk_id" in i.columns for i in table.list_indices()):
            # a B-tree on chunk_id: an incremental retrieval looks its stored hits up by id
            # (rows), a seek per id at any pool size; optimize() merges later rows into it
            table.create_scalar_index("chunk_id", index_type="BTREE")
        self._exact_cache = None
        self._df_cache = None
        self._async = None
        return report

    # -- term statistics --------------------------------------------------------------------

    def _terms_table(self, create: bool = False):
        if TERMS in self.db.table_names():
            return self.db.open_table(TERMS)
        return self.db.create_table(TERMS, schema=TERMS_SCHEMA) if create else None

    def _put_terms(self, terms, key: str, sha: str, data: pa.Table) -> None:
        """Replace shard ``key``'s rows of the terms table (one add: the marker row with the
        shard's chunk count, then one row per word)."""
        terms.delete(f"shard_key = {_quote(key)}")
        tf = term_frequencies(data["text"]) if data.num_rows else pa.table(
            {"term": pa.array([], pa.string()), "df": pa.array([], pa.int64())})
        n = tf.num_rows + 1
        terms.add(pa.table({
            "shard_key": pa.array([key] * n, pa.string()),
            "shard_sha": pa.array([sha] * n, pa.string()),
            "term": pa.concat_arrays([pa.array([""], pa.string()), tf["term"].combine_chunks()]),
            "df": pa.concat_arrays([pa.array([data.num_rows], pa.int64()),
                                    tf["df"].combine_chunks().cast(pa.int64())])}))

    def _repair_terms(self, terms, wanted: Mapping[str, str], load) -> None:
        """Drop the terms of shards no longer wanted; recount those whose count is missing or
        stale (a sync killed between the chunks' commit and the terms' commit)."""
        marks = terms.search().where("term = ''").select(["shard_key", "shard_sha"]).limit(
            None).to_arrow().to_pylist()
        have = {m["shard_key"]: m["shard_sha"] for m in marks}
        for key in sorted(set(have) - set(wanted)):
            terms.delete(f"shard_key = {_quote(key)}")
        for key in sorted(wanted):
            if have.get(key) != wanted[key]:
                data = load(key)
                if "text" not in data.column_names:
                    data = data.append_column("text", pa.nulls(data.num_rows, pa.large_string()))
                self._put_terms(terms, key, wanted[key], data)

    def _maintain_terms(self, terms) -> None:
        """A B-tree on ``term`` (built once, then merged by ``optimize``) keeps look-ups of a
        batch of query words a seek per word however many shards the pool has."""
        if not any("term" in i.columns for i in terms.list_indices()):
            if terms.count_rows():
                terms.create_scalar_index("term", index_type="BTREE")
        else:
            terms.optimize()

    def document_frequency(self, words: Sequence[str]) -> tuple[dict[str, int], int]:
        """(word -> number of chunks holding it, number of chunks) for lower-cased words.

        Words the pool does not hold are absent from the dict (their frequency is 0).
        """
        terms = self._terms_table()
        wanted = sorted({w for w in words if w})
        if terms is None:
            return {}, self.count()
        version = terms.version
        cache = self._df_cache
        if cache is None or cache[0] != version:
            marks = terms.search().where("term = ''").select(["df"]).limit(None).to_arrow()
            cache = self._df_cache = (version, {}, int(pc.sum(marks["df"]).as_py() or 0))
        known = cache[1]
        missing = [w for w in wanted if w not in known]
        for lo in range(0, len(missing), 1000):
            part = missing[lo:lo + 1000]
            where = "term IN (" + ", ".join(_quote(w) for w in part) + ")"
            res = terms.search().where(where).select(["term", "df"]).limit(None).to_arrow()
            agg = res.group_by("term").aggregate([("df", "sum")]) if res.num_rows else None
            found = dict(zip(agg["term"].to_pylist(), agg["df_sum"].to_pylist(),
                             strict=True)) if agg is not None else {}
            for w in part:
                known[w] = int(found.get(w, 0))
        return {w: known[w] for w in wanted if known[w]}, cache[2]

    # -- full-text index ------------------------------------------------------------------

    def _fts_config(self):
        from lancedb.index import FTS

        return FTS(stem=self.params.fts_stem, remove_stop_words=self.params.fts_stop_words)

    def _fts_index(self, table):
        return next((i for i in table.list_indices() if i.index_type == "FTS"), None)

    def _fts_matches_settings(self, info) -> bool:
        details = getattr(info, "index_details", None) or {}
        return (details.get("stem", True) == self.params.fts_stem
                and details.get("remove_stop_words", True) == self.params.fts_stop_words)

    def _maintain_fts(self, table, changed: bool) -> str:
        """Keep the full-text index over exactly the table's rows.

        Built from scratch when missing or when its tokenizer settings differ from the
        configured ones; otherwise a change is merged in by ``optimize`` (new rows indexed,
        deleted ones dropped from the BM25 statistics: the same scores as a rebuild).
        """
        info = self._fts_index(table)
        if not self.params.fts:
            if info is not None:
                table.drop_index(info.name)
            return "none"
        if table.count_rows() == 0:
            return "none"
        if info is None or not self._fts_matches_settings(info):
            return self.rebuild_fts(table)
        if changed or table.index_stats(info.name).num_unindexed_rows:
            table.optimize()
            return "merged"
        return "current"

    def rebuild_fts(self, table=None) -> str:
        """Build the full-text index from scratch (what a sync does the first time)."""
        table = table if table is not None else self._table()
        table.create_index("text", replace=True, config=self._fts_config())
        return "built"

    def texts(self, chunk_ids: Sequence[str]) -> dict[str, str]:
        """chunk_id -> text for the given chunks (for looking at results, not bulk reads)."""
        table = self._table()
        if table is None or not chunk_ids:
            return {}
        where = "chunk_id IN (" + ", ".join(_quote(c) for c in sorted(set(chunk_ids))) + ")"
        res = table.search().where(where).select(["chunk_id", "text"]).limit(None).to_arrow()
        return {c: t or "" for c, t in zip(res["chunk_id"].to_pylist(),
                                             res["text"].to_pylist(), strict=True)}

    def rows(self, chunk_ids: Sequence[str]) -> dict[str, tuple[str, str, np.ndarray]]:
        """chunk_id -> (doc_id, shard_key, vector) of those of ``chunk_ids`` the table holds
        (what an incremental retrieval checks its stored hits against)."""
        table = self._table()
        out: dict[str, tuple[str, str, np.ndarray]] = {}
        ids = sorted(set(chunk_ids))
        for lo in range(0, len(ids) if table is not None else 0, 2048):
            where = "chunk_id IN (" + ", ".join(_quote(c) for c in ids[lo:lo + 2048]) + ")"
            res = table.search().where(where).select(
                ["chunk_id", "doc_id", "shard_key", "vector"]).limit(None).to_arrow()
            vecs = res["vector"].combine_chunks().flatten().to_numpy(
                zero_copy_only=False).reshape(-1, self.dim).astype(np.float32)
            for c, d, k, v in zip(res["chunk_id"].to_pylist(), res["doc_id"].to_pylist(),
                                  res["shard_key"].to_pylist(), vecs, strict=True):
                out[c] = (d, k, v)
        return out

    def search_shards(self, queries: np.ndarray, k: int, shards: Sequence[str],
                      batch: int = 256) -> list[Hits]:
        """Top-``k`` by cosine among the rows of ``shards`` only (the shards an update adds).

        Exact (every query against every row of those shards) while they hold fewer than
        ``exact_below`` rows, which a weekly shard of a large pool usually does not: then the
        table's ANN index answers with the shards as a pre-filter, the same approximation as
        a search of the whole table.
        """
        table = self._table()
        empty = Hits([], [], np.zeros(0, np.float32), np.zeros((0, self.dim), np.float32))
        if table is None or not shards or not len(queries):
            return [empty for _ in range(len(queries))]
        where = "shard_key IN (" + ", ".join(_quote(x) for x in sorted(set(shards))) + ")"
        if self.index_kind() != "exact" and table.count_rows(where) >= self.params.exact_below:
            return self._search_ann(table, queries, k, batch, True, where)
        res = table.search().where(where).select(["chunk_id", "doc_id", "vector"]).limit(
            None).to_arrow()
        ids, docs = res["chunk_id"].to_pylist(), res["doc_id"].to_pylist()
        if not ids:
            return [empty for _ in range(len(queries))]
        vecs = res["vector"].combine_chunks().flatten().to_numpy(
            zero_copy_only=False).reshape(-1, self.dim).astype(np.float32)
        out = []
        for lo in range(0, len(queries), batch):
            sims = np.asarray(queries[lo:lo + batch], np.float32) @ vecs.T
            for row in sims:
                order = sorted(range(len(ids)), key=lambda i, r=row: (-r[i], ids[i]))[:k]
                out.append(Hits([ids[i] for i in order], [docs[i] for i in order],
                                row[order].astype(np.float32), vecs[order]))
        return out

    def has_fts(self) -> bool:
        table = self._table()
        return table is not None and self._fts_index(table) is not None

    def search_lexical(self, queries: Sequence[LexicalQuery], k: int,
                       with_vectors: bool = True, shards: Sequence[str] | None = None
                       ) -> list[Hits]:
        """Top-``k`` chunks by BM25 for each query (``Hits.scores`` are BM25 scores).

        The queries run concurrently (``fts_concurrency`` in flight) on LanceDB's event loop;
        an empty query, or one of stop words only, finds nothing. Ties are broken by chunk id.
        ``shards``: only rows of these shards (a filter applied before the top-``k``; scores
        still use the whole table's statistics).
        """
        from lancedb.background_loop import LOOP

        table = self._table()
        empty = Hits([], [], np.zeros(0, np.float32), np.zeros((0, self.dim), np.float32))
        if table is None or not len(queries) or self._fts_index(table) is None:
            return [empty for _ in queries]
        where = None if shards is None else "shard_key IN (" + ", ".join(
            _quote(x) for x in sorted(set(shards))) + ")"
        if shards is not None and not shards:
            return [empty for _ in queries]
        results, rows = LOOP.run(self._lexical_async(list(queries), k, with_vectors,
                                                     table.version, where))
        return [self._lexical_hits(r, rows, with_vectors) if r is not None else empty
                for r in results]

    async def _async_table(self, version: int):
        """The table on LanceDB's async API, kept open between calls (a fresh connection
        reloads the full-text index: half the speed) and reopened when its version moved."""
        if self._async is None or self._async[0] != version:
            db = await lancedb.connect_async(self.uri, storage_options=self.storage_options)
            self._async = (version, await db.open_table(TABLE))
        return self._async[1]

    async def _lexical_async(self, queries: list[LexicalQuery], k: int, with_vectors: bool,
                             version: int, where: str | None = None
                             ) -> tuple[list[pa.Table | None], dict[int, tuple]]:
        """The BM25 (row id, score) pairs of every query, then the rows of all of them in one
        ``take``: chunk id, doc id, vector (reading them inside each query costs a third of
        its speed)."""
        from lancedb.query import BooleanQuery, MatchQuery, Occur

        table = await self._async_table(version)
        gate = asyncio.Semaphore(self.params.fts_concurrency)

        async def one(q: LexicalQuery) -> pa.Table | None:
            if isinstance(q, str):
                if not q.strip():
                    return None
                ftq = MatchQuery(q, "text")
            else:
                parts = [(text, boost) for text, boost in q if text.strip() and boost > 0]
                if not parts:
                    return None
                ftq = BooleanQuery([(Occur.SHOULD, MatchQuery(t, "text", boost=b))
                                    for t, b in parts])
            async with gate:
                query = table.query().nearest_to_text(ftq)
                if where is not None:
                    query = query.where(where)
                return await query.limit(k).select(["_score"]).with_row_id().to_arrow()

        results = await asyncio.gather(*(one(q) for q in queries))
        ids = sorted({int(i) for r in results if r is not None
                      for i in r["_rowid"].to_numpy()})
        rows: dict[int, tuple] = {}
        if ids:
            columns = ["chunk_id", "doc_id"] + (["vector"] if with_vectors else [])
            got = await table.take_row_ids(ids).select(columns).with_row_id().to_arrow()
            vecs = (got["vector"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
                    .reshape(-1, self.dim).astype(np.float32) if with_vectors
                    else np.zeros((got.num_rows, 0), np.float32))
            rows = dict(zip(got["_rowid"].to_numpy().tolist(),
                            zip(got["chunk_id"].to_pylist(), got["doc_id"].to_pylist(), vecs,
                                strict=True), strict=True))
        return results, rows

    def _lexical_hits(self, res: pa.Table, rows: dict[int, tuple], with_vectors: bool) -> Hits:
        """One query's hits, best first, ties by chunk id, from its (row id, score) pairs and
        the rows taken for all queries."""
        got = [rows[int(r)] for r in res["_rowid"].to_numpy()]
        scores = res["_score"].to_numpy().astype(np.float32)
        ids = np.asarray([g[0] for g in got], dtype=str)
        docs = np.asarray([g[1] for g in got], dtype=str)
        order = np.lexsort((ids, -scores))
        if not with_vectors:
            vecs = np.zeros((len(order), 0), np.float32)
        elif len(order):
            vecs = np.stack([got[i][2] for i in order])
        else:
            vecs = np.zeros((0, self.dim), np.float32)
        return Hits(ids[order].tolist(), docs[order].tolist(), scores[order], vecs)

    def _vector_indices(self, table) -> list:
        return [i for i in table.list_indices() if "vector" in i.columns]

    def index_kind(self) -> str:
        """The kind of ANN index the table has ("exact" when none)."""
        table = self._table()
        if table is None:
            return "exact"
        by_lance = {v: k for k, v in _LANCE_TYPES.items()}
        kinds = [by_lance.get(i.index_type, i.index_type) for i in self._vector_indices(table)]
        return kinds[0] if kinds else "exact"

    def _maintain_index(self, table, rows: int) -> str:
        """Train the ANN index when the table outgrows exact search; keep it current after.

        Files are compacted before training: in LanceDB 0.40, compacting or merging rows into
        a trained IVF index afterwards slows its searches about tenfold (bench: 3,800 to
        240-400 queries/s at 200K rows), so the IVF kinds are trained again on every change
        (seconds for SQ at 200K rows). HNSW takes new rows as a delta graph at ~0.75x speed,
        and is trained again after ``MAX_DELTA_INDICES`` of them, when more rows are new than
        indexed, or when another kind is configured.
        """
        from lancedb.index import IvfHnswSq, IvfPq, IvfSq

        if rows < self.params.exact_below:
            return "exact"
        plan = ann_plan(rows, self.dim, self.params)
        current = [i for i in self._vector_indices(table)
                   if i.index_type == _LANCE_TYPES[plan.kind]]
        if current and plan.kind == "ivf_hnsw_sq":
            stats = table.index_stats(current[0].name)
            if stats.num_unindexed_rows <= stats.num_indexed_rows \
                    and stats.num_indices < MAX_DELTA_INDICES:
                table.optimize()  # compacts files; new rows go into a delta graph
                return plan.kind
        if plan.kind == "ivf_hnsw_sq":
            config = IvfHnswSq(distance_type="cosine", num_partitions=plan.num_partitions)
        elif plan.kind == "ivf_sq":
            config = IvfSq(distance_type="cosine", num_partitions=plan.num_partitions)
        else:
            config = IvfPq(distance_type="cosine", num_partitions=plan.num_partitions,
                           num_sub_vectors=plan.num_sub_vectors)
        table.optimize()
        table.create_index("vector", replace=True, config=config)
        return plan.kind

    def _exact_vectors(self, table) -> tuple[pa.Table, np.ndarray]:
        version = table.version
        if self._exact_cache is None or self._exact_cache[0] != version:
            data = _scan(table, ["chunk_id", "doc_id", "vector"])
            vecs = data["vector"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
            self._exact_cache = (version, data, vecs.reshape(-1, self.dim).astype(np.float32))
        return self._exact_cache[1], self._exact_cache[2]

    def search(self, queries: np.ndarray, k: int, exact: bool | None = None,
               batch: int = 256, with_vectors: bool = True) -> list[Hits]:
        """Top-``k`` chunks by cosine similarity for each (unit-norm) query vector.

        ``with_vectors`` also returns each hit's stored vector (what near-duplicate exclusion
        compares); without it ``Hits.vectors`` is empty and ANN search reads less.
        """
        table = self._table()
        if table is None or table.count_rows() == 0 or len(queries) == 0:
            return [Hits([], [], np.zeros(0, np.float32), np.zeros((0, self.dim), np.float32))
                    for _ in range(len(queries))]
        use_exact = (self.index_kind() == "exact") if exact is None else exact
        if use_exact:
            return self._search_exact(table, queries, k, batch)
        return self._search_ann(table, queries, k, batch, with_vectors)

    def _search_exact(self, table, queries: np.ndarray, k: int, batch: int) -> list[Hits]:
        meta, vecs = self._exact_vectors(table)
        ids, docs = meta["chunk_id"].to_pylist(), meta["doc_id"].to_pylist()
        k = min(k, len(ids))
        out = []
        for lo in range(0, len(queries), batch):
            sims = queries[lo:lo + batch].astype(np.float32) @ vecs.T
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            for row, cand in enumerate(top):
                # order by similarity, ties by chunk id, so results do not depend on threads
                order = sorted(cand, key=lambda i, r=row: (-sims[r, i], ids[i]))
                out.append(Hits([ids[i] for i in order], [docs[i] for i in order],
                                sims[row, order].astype(np.float32), vecs[order]))
        return out

    def _search_ann(self, table, queries: np.ndarray, k: int, batch: int,
                    with_vectors: bool, where: str | None = None) -> list[Hits]:
        plan = ann_plan(table.count_rows(), self.dim, self.params)
        ef = plan.ef(k, self.params)
        columns = ["chunk_id", "doc_id", "_distance"] + (["vector"] if with_vectors else [])
        out: list[Hits] = []
        for lo in range(0, len(queries), batch):
            part = queries[lo:lo + batch].astype(np.float32)
            query = table.search(list(part)).limit(k).nprobes(plan.nprobes)
            if ef is not None:
                query = query.ef(ef)
            if plan.refine_factor:
                query = query.refine_factor(plan.refine_factor)
            if where is not None:
                query = query.where(where, prefilter=True)
            res = query.select(columns).to_arrow()
            out.extend(self._split_hits(res, len(part), with_vectors))
        return out

    def _split_hits(self, res: pa.Table, n_queries: int, with_vectors: bool) -> list[Hits]:
        """One ``Hits`` per query from a multi-query result, best first, ties by chunk id."""
        qidx = (res["query_index"].to_numpy() if "query_index" in res.column_names
                else np.zeros(res.num_rows, np.int64))
        sims = 1.0 - res["_distance"].to_numpy().astype(np.float32)
        ids = np.asarray(res["chunk_id"].to_pylist(), dtype=str)
        docs = np.asarray(res["doc_id"].to_pylist(), dtype=str)
        order = np.lexsort((ids, -sims, qidx))
        bounds = np.searchsorted(qidx[order], np.arange(n_queries + 1))
        vecs = (res["vector"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
                .reshape(-1, self.dim) if with_vectors
                else np.zeros((res.num_rows, 0), np.float32))
        out = []
        for q in range(n_queries):
            sel = order[bounds[q]:bounds[q + 1]]
            out.append(Hits(ids[sel].tolist(), docs[sel].tolist(), sims[sel],
                            vecs[sel].astype(np.float32)))
        return out
