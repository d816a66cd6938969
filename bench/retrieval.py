"""Each LanceDB ANN index kind against exact search, at 200K vectors of MiniLM's dimension.

Exact search is the strongest plain alternative: one batched matrix product per block of
queries (numpy, BLAS) and a partial sort. The index is asked through ``VectorIndex.search``,
as the retrieval asset asks it (hits with their stored vectors, for near-duplicate
exclusion, sorted and split per query), with the parameters it derives from the row count.
Both answer the same queries; recall@10 is the overlap of the index's top 10 with the exact
top 10.

The vectors are synthetic, drawn to have the structure of sentence embeddings (a few
thousand topics in a 48-dimensional subspace, projected to 384 dimensions, plus noise, unit
norm), because embedding 200K real chunks with MiniLM would take 20 minutes on 2 CPU cores.
Uniform random vectors would be a worst case no ANN index is built for; real embeddings sit
near a low-dimensional manifold like these. Queries are perturbed copies of stored vectors,
as anchor windows are near the chunks that contain them.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np
import pyarrow as pa

from bench.common import Record, device_name, report
from lakehouse.vector_index import ANN_KINDS, IndexParams, VectorIndex, ann_plan


def synthetic(n: int, dim: int, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    latent = 48
    topics = rng.normal(size=(max(n // 100, 10), latent)).astype(np.float32)
    z = topics[rng.integers(0, len(topics), n)] + 0.5 * rng.normal(size=(n, latent))
    proj = rng.normal(size=(latent, dim)).astype(np.float32)
    x = (z.astype(np.float32) @ proj) + 0.3 * rng.normal(size=(n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[rng.integers(0, n, n_queries)] + 0.02 * rng.normal(size=(n_queries, dim))
    q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    return x.astype(np.float32), q


def exact_topk(x: np.ndarray, q: np.ndarray, k: int, block: int = 512) -> np.ndarray:
    out = []
    for lo in range(0, len(q), block):
        sims = q[lo:lo + block] @ x.T
        out.append(np.argpartition(-sims, k - 1, axis=1)[:, :k])
    return np.concatenate(out)


def _shard(x: np.ndarray, offset: int) -> pa.Table:
    ids = [str(i) for i in range(offset, offset + len(x))]
    return pa.table({"chunk_id": ids, "doc_id": ids, "corpus": ["bench"] * len(x),
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()),
                                                                 x.shape[1])})


def _timed_search(index: VectorIndex, q: np.ndarray, k: int, truth: np.ndarray
                  ) -> tuple[float, float]:
    """(seconds for all queries, recall@k against ``truth``)."""
    index.search(q[:64], k)  # warm-up: loads the index
    start = time.perf_counter()
    hits = index.search(q, k, batch=500, with_vectors=True)
    elapsed = time.perf_counter() - start
    recall = float(np.mean([len({int(c) for c in h.chunk_ids} & set(t.tolist())) / k
                            for h, t in zip(hits, truth, strict=True)]))
    return elapsed, recall


def time_kind(kind: str, x: np.ndarray, extra: np.ndarray, q: np.ndarray, k: int,
              truth: np.ndarray, truth_after: np.ndarray) -> dict:
    """Search time and recall of one index kind, trained on ``x``, then after a sync that
    adds ``extra`` as a second shard (how new corpus shards arrive)."""
    n, dim = x.shape
    params = IndexParams(kind=kind, exact_below=50_000)
    shards = {"bench/0": _shard(x, 0), "bench/1": _shard(extra, n)}
    with tempfile.TemporaryDirectory() as tmp:
        index = VectorIndex(tmp, dim, params)
        start = time.perf_counter()
        sync = index.sync({"bench/0": "v1"}, shards.__getitem__)
        t_build = time.perf_counter() - start
        assert sync.index == kind, sync
        t_ann, recall = _timed_search(index, q, k, truth)
        start = time.perf_counter()
        index.sync({"bench/0": "v1", "bench/1": "v1"}, shards.__getitem__)
        t_add = time.perf_counter() - start
        t_after, recall_after = _timed_search(index, q, k, truth_after)
    plan = ann_plan(n, dim, params)
    return {"t": t_ann, "recall": recall, "t_after": t_after, "recall_after": recall_after,
            "info": {"num_partitions": plan.num_partitions, "nprobes": plan.nprobes,
                     "num_sub_vectors": plan.num_sub_vectors, "ef": plan.ef(k, params),
                     "refine_factor": plan.refine_factor, "index_build_s": round(t_build, 1),
                     "add_sync_s": round(t_add, 1), "added_rows": len(extra)}}


def main(n: int = 200_000, dim: int = 384, n_queries: int = 2000, k: int = 10) -> None:
    allx, q = synthetic(n + n // 10, dim, n_queries)
    x, extra = allx[:n], allx[n:]
    exact_topk(x, q[:64], k)  # warm-up
    start = time.perf_counter()
    truth = exact_topk(x, q, k)
    t_exact = time.perf_counter() - start
    truth_after = exact_topk(allx, q, k)
    qps_exact = n_queries / t_exact
    records = []
    for kind in ANN_KINDS:
        r = time_kind(kind, x, extra, q, k, truth, truth_after)
        common = {"vectors": n, "dim": dim, "queries": n_queries, "k": k, **r["info"]}
        for label, t, recall in (("", r["t"], r["recall"]),
                                 (" after +10% rows", r["t_after"], r["recall_after"])):
            qps = n_queries / t
            records.append(Record(f"queries/s, {kind}{label} / exact numpy", qps, qps_exact,
                                  qps / qps_exact, "queries/s", "ratio >= 5",
                                  qps / qps_exact >= 5, device_name(), common))
            records.append(Record(f"recall@10, {kind}{label}", recall, 1.0, recall,
                                  "fraction", ">= 0.95", recall >= 0.95, device_name(),
                                  common))
    report("retrieval", records)


if __name__ == "__main__":
    main()
