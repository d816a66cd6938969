"""The LanceDB vector index of pool chunks: incremental by shard, exact when small.

Every row carries the shard it came from (``shard_key``) and the hash of that shard's
embeddings file (``shard_sha``), so the table itself says which shards it holds and in which
version; ``sync`` adds new shards, replaces changed ones and drops removed ones by comparing
that state with the lake. Each LanceDB ``add`` and ``delete`` is one atomic commit, so a
killed sync leaves the table consistent per shard and the next sync finishes the job.

Below ``exact_below`` rows the index is searched exactly (one batched matrix product over the
vectors in memory); above it an IVF-PQ index is trained with parameters derived from the row
count and searched with refinement on the full vectors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import lancedb
import numpy as np
import pyarrow as pa

TABLE = "chunks"


def index_schema(dim: int) -> pa.Schema:
    return pa.schema([("chunk_id", pa.string()), ("doc_id", pa.string()),
                      ("corpus", pa.string()), ("shard_key", pa.string()),
                      ("shard_sha", pa.string()),
                      ("vector", pa.list_(pa.float32(), dim))])


@dataclass(frozen=True)
class IndexParams:
    exact_below: int = 50_000  # rows; below this, search is exact
    num_partitions: int | None = None  # IVF lists; default ~ sqrt(rows)
    num_sub_vectors: int | None = None  # PQ codes per vector; default dim / 4
    nprobes: int | None = None  # lists searched per query; default ~1% of lists, at least 2
    refine_factor: int = 3  # re-rank refine_factor * k PQ hits on the full vectors


def ivf_pq_params(n_rows: int, dim: int, params: IndexParams) -> tuple[int, int, int]:
    """(num_partitions, num_sub_vectors, nprobes) for a table of ``n_rows`` vectors."""
    partitions = params.num_partitions or int(min(4096, max(1, round(math.sqrt(n_rows)))))
    sub = params.num_sub_vectors
    if sub is None:
        sub = next(d for d in (dim // 4, dim // 8, dim // 2, 1) if d >= 1 and dim % d == 0)
    nprobes = params.nprobes or max(2, math.ceil(partitions * 0.01))
    return partitions, sub, nprobes


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    rows: int = 0
    index: str = "exact"


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


class VectorIndex:
    def __init__(self, uri: str, dim: int, params: IndexParams = IndexParams()):
        self.uri, self.dim, self.params = uri, dim, params
        self.db = lancedb.connect(uri)
        self._exact_cache: tuple[int, pa.Table, np.ndarray] | None = None

    def _table(self, create: bool = False):
        if TABLE in self.db.table_names():
            return self.db.open_table(TABLE)
        if not create:
            return None
        return self.db.create_table(TABLE, schema=index_schema(self.dim))

    def count(self) -> int:
        table = self._table()
        return 0 if table is None else table.count_rows()

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
        state = self.shard_state()
        table = self._table(create=True)
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
            if data.num_rows:
                n = data.num_rows
                data = data.append_column("shard_key", pa.array([key] * n, pa.string()))
                data = data.append_column("shard_sha", pa.array([sha] * n, pa.string()))
                table.add(data.select(index_schema(self.dim).names).cast(
                    index_schema(self.dim)))
        report.rows = table.count_rows()
        if report.added or report.replaced or report.removed:
            report.index = self._maintain_index(table, report.rows)
        else:
            report.index = self.index_kind()
        self._exact_cache = None
        return report

    def index_kind(self) -> str:
        table = self._table()
        if table is None:
            return "exact"
        return "ivf_pq" if any(i.index_type == "IvfPq" for i in table.list_indices()) \
            else "exact"

    def _maintain_index(self, table, rows: int) -> str:
        """Train the ANN index when the table outgrows exact search; fold new rows in after."""
        from lancedb.index import IvfPq

        if rows < self.params.exact_below:
            return "exact"
        indices = [i for i in table.list_indices() if i.index_type == "IvfPq"]
        if indices:
            stats = table.index_stats(indices[0].name)
            if stats.num_unindexed_rows <= stats.num_indexed_rows:
                table.optimize()  # compacts files and adds the new rows to the index
                return "ivf_pq"
        partitions, sub, _ = ivf_pq_params(rows, self.dim, self.params)
        table.create_index("vector", replace=True, config=IvfPq(
            distance_type="cosine", num_partitions=partitions, num_sub_vectors=sub))
        table.optimize()
        return "ivf_pq"

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
                    with_vectors: bool) -> list[Hits]:
        _, _, nprobes = ivf_pq_params(table.count_rows(), self.dim, self.params)
        out: list[Hits] = []
        for lo in range(0, len(queries), batch):
            part = queries[lo:lo + batch].astype(np.float32)
            res = (table.search(list(part)).limit(k).nprobes(nprobes)
                   .refine_factor(self.params.refine_factor)
                   .select(["chunk_id", "doc_id", "_distance"] + (["vector"] if with_vectors
                                                                   else [])).to_arrow())
            per = [[] for _ in range(len(part))]
            qidx = (res["query_index"].to_pylist() if "query_index" in res.column_names
                    else [0] * res.num_rows)
            rows = zip(qidx, res["chunk_id"].to_pylist(), res["doc_id"].to_pylist(),
                       res["_distance"].to_pylist(), range(res.num_rows), strict=True)
            for q, cid, did, dist, i in rows:
                per[q].append((1.0 - dist, cid, did, i))
            vec_all = (res["vector"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
                       .reshape(-1, self.dim) if with_vectors
                       else np.zeros((res.num_rows, 0), np.float32))
            for hits in per:
                hits.sort(key=lambda h: (-h[0], h[1]))
                out.append(Hits([h[1] for h in hits], [h[2] for h in hits],
                                np.array([h[0] for h in hits], np.float32),
                                vec_all[[h[3] for h in hits]].astype(np.float32)))
        return out
