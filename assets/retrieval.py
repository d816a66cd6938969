"""`vector_index` and `retrieval_candidates`: EntropyLong step 2."""

import time

import dagster as dg
import numpy as np

from assets.common import image, read_shard_table, shard_key, torch_device, write_shard_table
from lakehouse import tables
from lakehouse.corpora import file_sha256
from lakehouse.plots import histogram_png
from lakehouse.retrieval import filter_hits
from lakehouse.storage import read_parquet
from lakehouse.vector_index import IndexParams, VectorIndex
from models.embedding import embed_texts
from models.registry import load_embedder
from orchestration.config import PipelineConfig
from orchestration.k8s import op_tags
from orchestration.partitions import (
    NIGHTLY_INCREMENTAL,
    PER_SHARD_BACKFILL,
    TRANSIENT_RETRY,
    shards_partitions,
)
from orchestration.resources import PipelineResource

NO_SELF_CHECK = "no_self_candidates"


def open_index(settings: PipelineConfig, dim: int) -> VectorIndex:
    """The configured LanceDB index under the lake (also used outside Dagster runs)."""
    s = settings.index
    params = IndexParams(kind=s.kind, exact_below=s.exact_below,
                         num_partitions=s.num_partitions, num_sub_vectors=s.num_sub_vectors,
                         nprobes=s.nprobes, ef=s.ef, refine_factor=s.refine_factor)
    return VectorIndex(settings.lake_store.path("lancedb"), dim, params)


def _embedding_files(pipeline: PipelineResource) -> dict[str, str]:
    """Partition key -> chunk_embeddings file, for the shards of pool corpora in the lake."""
    import glob
    from pathlib import Path

    settings = pipeline.settings
    pool = {c.name for c in settings.corpora if "pool" in c.roles}
    files = {}
    for path in sorted(glob.glob(pipeline.lake.asset_glob("chunk_embeddings"))):
        p = Path(path)
        if p.parent.name in pool:
            files[f"{p.parent.name}/{p.stem}"] = path
    return files


@dg.asset(
    op_tags=op_tags("cpu"),
    deps=["chunk_embeddings"], group_name="retrieval", kinds={"lancedb"},
    pool="lancedb_writer", retry_policy=TRANSIENT_RETRY,
    automation_condition=dg.AutomationCondition.eager(),  # cheap: syncs only changed shards
    description="LanceDB table of the pool's chunk vectors, kept in step with the lake shard "
                "by shard (adds new, replaces changed, drops removed); exact search while "
                "small, an ANN index (`index.kind`, HNSW-SQ by default) above "
                "`index.exact_below` rows.",
)
def vector_index(context: dg.AssetExecutionContext, pipeline: PipelineResource):
    files = _embedding_files(pipeline)
    wanted = {key: file_sha256(path)[0] for key, path in files.items()}
    dim = 0
    if files:
        first = read_parquet(next(iter(files.values())), columns=["vector"])
        dim = first.schema.field("vector").type.list_size
    index = open_index(pipeline.settings, dim or 384)
    start = time.perf_counter()
    report = index.sync(wanted, lambda key: read_parquet(
        files[key], columns=["chunk_id", "doc_id", "corpus", "vector"]))
    context.log.info(f"index: +{len(report.added)} ~{len(report.replaced)} "
                     f"-{len(report.removed)} shards, {report.rows} rows, {report.index} "
                     f"({time.perf_counter() - start:.1f} s)")
    return dg.MaterializeResult(metadata={
        "rows": report.rows, "shards": len(wanted), "index": report.index,
        "added": dg.MetadataValue.json(report.added),
        "replaced": dg.MetadataValue.json(report.replaced),
        "removed": dg.MetadataValue.json(report.removed),
        "uri": dg.MetadataValue.path(index.uri)})


@dg.asset(
    op_tags=op_tags("cpu"),
    partitions_def=shards_partitions, backfill_policy=PER_SHARD_BACKFILL,
    deps=["anchors", "chunk_embeddings", "vector_index"],
    retry_policy=TRANSIENT_RETRY, automation_condition=NIGHTLY_INCREMENTAL,
    group_name="retrieval", kinds={"lancedb", "parquet"},
    check_specs=[dg.AssetCheckSpec(NO_SELF_CHECK, asset="retrieval_candidates", blocking=True,
                                   description="no candidate comes from its root document")],
    description="Top-K pool chunks for every anchor query, the root's own chunks and its "
                "near-duplicates excluded and counted.",
)
def retrieval_candidates(context: dg.AssetExecutionContext, pipeline: PipelineResource):
    corpus, shard = shard_key(context)
    settings = pipeline.settings
    cfg = settings.retrieval
    anc = read_shard_table(pipeline, "anchors", corpus, shard, ["doc_id", "position", "query"])
    own = read_shard_table(pipeline, "chunk_embeddings", corpus, shard, ["doc_id", "vector"])
    dim = own.schema.field("vector").type.list_size
    own_vecs = own["vector"].combine_chunks().flatten().to_numpy(
        zero_copy_only=False).reshape(-1, dim)
    own_by_doc: dict[str, list[int]] = {}
    for i, d in enumerate(own["doc_id"].to_pylist()):
        own_by_doc.setdefault(d, []).append(i)
    index = open_index(settings, dim)
    rows: list[dict] = []
    no_candidates = 0
    if anc.num_rows:
        queries = anc["query"].to_pylist()
        unique = sorted(set(queries))
        model = load_embedder(settings.models.embedder,
                              device=torch_device(settings.scoring.device))
        start = time.perf_counter()
        qvecs = embed_texts(model, unique, batch_size=cfg.batch_size)
        row_of = {q: i for i, q in enumerate(unique)}
        longest_own = max((len(v) for v in own_by_doc.values()), default=0)
        fetch = 2 * cfg.k + longest_own  # room for the exclusions
        hits = index.search(qvecs, fetch, batch=cfg.batch_size)
        elapsed = time.perf_counter() - start
        context.log.info(f"{len(queries)} anchors ({len(unique)} distinct queries) searched "
                         f"in {elapsed:.1f} s ({len(unique) / max(elapsed, 1e-9):,.0f} q/s)")
        for doc_id, pos, q in zip(anc["doc_id"].to_pylist(), anc["position"].to_pylist(),
                                  queries, strict=True):
            root_vecs = own_vecs[own_by_doc.get(doc_id, [])]
            f = filter_hits(doc_id, hits[row_of[q]], root_vecs, cfg.k, cfg.near_dup_cosine)
            if not f.candidates:
                no_candidates += 1
            for c in f.candidates:
                rows.append({"doc_id": doc_id, "position": pos, "rank": c.rank,
                             "chunk_id": c.chunk_id, "chunk_doc_id": c.chunk_doc_id,
                             "score": c.score, "excluded_self": f.excluded_self,
                             "excluded_near_dup": f.excluded_near_dup})
    table = tables.from_rows(rows, tables.RETRIEVAL_CANDIDATES)
    path = write_shard_table(pipeline, "retrieval_candidates", corpus, shard, table)
    scores = np.array([r["score"] for r in rows], np.float32)
    per_anchor = {(r["doc_id"], r["position"]): (r["excluded_self"], r["excluded_near_dup"])
                  for r in rows}
    meta = {"anchors": anc.num_rows, "candidates": len(rows),
            "anchors_without_candidates": no_candidates,
            "excluded_self": int(sum(v[0] for v in per_anchor.values())),
            "excluded_near_dup": int(sum(v[1] for v in per_anchor.values())),
            "index": index.index_kind(), "k": cfg.k, "dagster/row_count": len(rows),
            "path": dg.MetadataValue.path(path)}
    if scores.size:
        meta["score_histogram"] = image(histogram_png(
            scores, f"{context.partition_key}: query-chunk cosine", "cosine similarity"),
            "retrieval scores")
    yield dg.MaterializeResult(metadata=meta)
    self_hits = sum(1 for r in rows if r["chunk_doc_id"] == r["doc_id"])
    yield dg.AssetCheckResult(check_name=NO_SELF_CHECK, passed=self_hits == 0,
                              metadata={"self_candidates": self_hits})
