"""`vector_index` and `retrieval_candidates`: EntropyLong step 2."""

import time

import dagster as dg
import fsspec
import numpy as np

from assets.common import image, torch_device
from lakehouse import tables
from lakehouse.corpora import file_sha256
from lakehouse.plots import histogram_png
from lakehouse.retrieval import filter_hits
from lakehouse.storage import read_parquet
from lakehouse.vector_index import IndexParams, VectorIndex
from models.embedding import embed_texts
from models.registry import load_embedder
from orchestration.automation import FOLLOW_INPUTS, follow_only
from orchestration.config import PipelineConfig
from orchestration.lake_assets import StageContext, lake_asset
from orchestration.partitions import TRANSIENT_RETRY

NO_SELF_CHECK = "no_self_candidates"


def open_index(settings: PipelineConfig, uri: str, dim: int) -> VectorIndex:
    """The configured LanceDB index at ``uri`` (the asset's lake folder)."""
    s = settings.index
    params = IndexParams(kind=s.kind, exact_below=s.exact_below,
                         num_partitions=s.num_partitions, num_sub_vectors=s.num_sub_vectors,
                         nprobes=s.nprobes, ef=s.ef, refine_factor=s.refine_factor)
    return VectorIndex(uri, dim, params)


def _pool_files(folder: str, pool: set[str]) -> dict[str, str]:
    """Partition key -> file of every pool corpus's shard below ``folder`` (any fsspec URL)."""
    fs, root = fsspec.core.url_to_fs(folder)
    files = {}
    for path in sorted(fs.glob(f"{root.rstrip('/')}/*/*.parquet")):
        corpus, name = path.rsplit("/", 2)[-2:]
        if corpus in pool and ".tmp" not in name:
            files[f"{corpus}/{name.removesuffix('.parquet')}"] = fs.unstrip_protocol(path)
    return files


@lake_asset(
    reads={"chunk_embeddings": "all"}, settings=["index"], group="retrieval",
    kinds=["lancedb"], pool="lancedb_writer", retry=TRANSIENT_RETRY, automation=FOLLOW_INPUTS,
    description="LanceDB table of the pool's chunk vectors, kept in step with the lake shard "
                "by shard (adds new, replaces changed, drops removed); exact search while "
                "small, an ANN index (`index.kind`, HNSW-SQ by default) above "
                "`index.exact_below` rows.",
)
def vector_index(ctx: StageContext):
    pool = {c.name for c in ctx.settings.corpora if "pool" in c.roles}
    files = _pool_files(ctx.input_path("chunk_embeddings"), pool)
    wanted = {key: file_sha256(path)[0] for key, path in files.items()}
    dim = 384
    if files:
        first = read_parquet(next(iter(files.values())), columns=["vector"])
        dim = first.schema.field("vector").type.list_size
    index = open_index(ctx.settings, ctx.output_path(), dim)
    start = time.perf_counter()
    report = index.sync(wanted, lambda key: read_parquet(
        files[key], columns=["chunk_id", "doc_id", "corpus", "vector"]))
    ctx.log.info(f"index: +{len(report.added)} ~{len(report.replaced)} -{len(report.removed)} "
                 f"shards, {report.rows} rows, {report.index} "
                 f"({time.perf_counter() - start:.1f} s)")
    return dg.MaterializeResult(metadata={
        "rows": report.rows, "shards": len(wanted), "index": report.index,
        "added": dg.MetadataValue.json(report.added),
        "replaced": dg.MetadataValue.json(report.replaced),
        "removed": dg.MetadataValue.json(report.removed),
        "dagster/row_count": report.rows, "uri": dg.MetadataValue.path(index.uri)})


@lake_asset(
    partitions="root_shards", settings=["retrieval", "models.embedder"], group="retrieval",
    reads={"anchors": "shard", "chunk_embeddings": "shard", "vector_index": "all"},
    kinds=["lancedb", "parquet"], retry=TRANSIENT_RETRY,
    automation=follow_only("anchors", "vector_index"),
    checks=[(NO_SELF_CHECK, "no candidate comes from its root document", True)],
    description="Top-K pool chunks for every anchor query, the root's own chunks and its "
                "near-duplicates excluded and counted.",
)
def retrieval_candidates(ctx: StageContext):
    settings = ctx.settings
    cfg = settings.retrieval
    anc = ctx.shard_table("anchors", ["doc_id", "position", "query"])
    own = ctx.shard_table("chunk_embeddings", ["doc_id", "vector"])
    dim = own.schema.field("vector").type.list_size
    own_vecs = own["vector"].combine_chunks().flatten().to_numpy(
        zero_copy_only=False).reshape(-1, dim)
    own_by_doc: dict[str, list[int]] = {}
    for i, d in enumerate(own["doc_id"].to_pylist()):
        own_by_doc.setdefault(d, []).append(i)
    index = open_index(settings, ctx.input_path("vector_index"), dim)
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
        hits = index.search(qvecs, 2 * cfg.k + longest_own, batch=cfg.batch_size)
        elapsed = time.perf_counter() - start
        ctx.log.info(f"{len(queries)} anchors ({len(unique)} distinct queries) searched "
                     f"in {elapsed:.1f} s ({len(unique) / max(elapsed, 1e-9):,.0f} q/s)")
        for doc_id, pos, q in zip(anc["doc_id"].to_pylist(), anc["position"].to_pylist(),
                                  queries, strict=True):
            root_vecs = own_vecs[own_by_doc.get(doc_id, [])]
            f = filter_hits(doc_id, hits[row_of[q]], root_vecs, cfg.k, cfg.near_dup_cosine)
            no_candidates += not f.candidates
            for c in f.candidates:
                rows.append({"doc_id": doc_id, "position": pos, "rank": c.rank,
                             "chunk_id": c.chunk_id, "chunk_doc_id": c.chunk_doc_id,
                             "score": c.score, "excluded_self": f.excluded_self,
                             "excluded_near_dup": f.excluded_near_dup})
    path = ctx.write_shard(tables.from_rows(rows, tables.RETRIEVAL_CANDIDATES))
    scores = np.array([r["score"] for r in rows], np.float32)
    per_anchor = {(r["doc_id"], r["position"]): (r["excluded_self"], r["excluded_near_dup"])
                  for r in rows}
    meta = {"anchors": anc.num_rows, "candidates": len(rows),
            "anchors_without_candidates": int(no_candidates),
            "excluded_self": int(sum(v[0] for v in per_anchor.values())),
            "excluded_near_dup": int(sum(v[1] for v in per_anchor.values())),
            "index": index.index_kind(), "k": cfg.k, "dagster/row_count": len(rows),
            "path": dg.MetadataValue.path(path)}
    if scores.size:
        meta["score_histogram"] = image(histogram_png(
            scores, f"{ctx.partition_key}: query-chunk cosine", "cosine similarity"),
            "retrieval scores")
    yield dg.MaterializeResult(metadata=meta)
    self_hits = sum(1 for r in rows if r["chunk_doc_id"] == r["doc_id"])
    yield dg.AssetCheckResult(check_name=NO_SELF_CHECK, passed=self_hits == 0,
                              metadata={"self_candidates": self_hits})
