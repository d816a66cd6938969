"""`corpus_shards`: one shard of a raw corpus, cleaned into the lake."""

import dagster as dg
import pyarrow.parquet as pq

from lakehouse.corpora import file_sha256, split_key
from lakehouse.ingest import ingest_rows, shard_stats
from lakehouse.readers import read_shard
from lakehouse.storage import write_parquet
from orchestration.discovery import find_shard
from orchestration.k8s import op_tags
from orchestration.partitions import PER_SHARD_BACKFILL, shards_partitions
from orchestration.resources import PipelineResource

COUNTS_CHECK = "counts_balance"


def _row_count(path: str) -> int:
    return pq.ParquetFile(path).metadata.num_rows


@dg.asset(
    op_tags=op_tags("cpu"),
    partitions_def=shards_partitions, backfill_policy=PER_SHARD_BACKFILL,
    group_name="ingest",
    kinds={"parquet", "python"},
    check_specs=[dg.AssetCheckSpec(COUNTS_CHECK, asset="corpus_shards", blocking=True,
                                   description="rows in = docs out + duplicates + quarantined, "
                                               "counted from the written files")],
    description="Cleaned documents of one corpus shard (NFC, control characters removed, "
                "stable doc_id, exact duplicates removed); bad rows go to the quarantine table.",
)
def corpus_shards(context: dg.AssetExecutionContext, pipeline: PipelineResource):
    key = context.partition_key
    corpus, shard = split_key(key)
    config = pipeline.settings
    ref = find_shard(config, key)
    spec = config.corpus(corpus)
    sha, size = file_sha256(ref.uri)
    max_chars = config.ingest.max_chars
    result = ingest_rows(read_shard(ref.uri, spec), corpus, shard, ref.uri, max_chars)
    lake = pipeline.lake
    paths = {name: lake.shard_path(name, corpus, shard)
             for name in ("corpus_shards", "quarantine", "duplicates", "shard_stats")}
    write_parquet(result.docs, paths["corpus_shards"])
    write_parquet(result.quarantine, paths["quarantine"])
    write_parquet(result.duplicates, paths["duplicates"])
    write_parquet(shard_stats(result, corpus, shard, ref.uri, sha, size, max_chars),
                  paths["shard_stats"])
    counts = result.counts
    context.log.info(f"{key}: {counts['rows_in']} rows -> {counts['docs_out']} docs, "
                     f"{counts['duplicates']} duplicates, {counts['quarantined']} quarantined")
    reasons = result.quarantine.group_by("reason").aggregate([("reason", "count")]).to_pylist()

    written = {n: _row_count(p) for n, p in paths.items() if n != "shard_stats"}
    balanced = (counts["rows_in"] == written["corpus_shards"] + written["duplicates"]
                + written["quarantine"])
    yield dg.MaterializeResult(metadata={
        **{k: dg.MetadataValue.int(v) for k, v in counts.items()},
        "dagster/row_count": dg.MetadataValue.int(counts["docs_out"]),
        "quarantine_reasons": dg.MetadataValue.json(
            {r["reason"]: r["reason_count"] for r in reasons}),
        "source": dg.MetadataValue.path(ref.uri),
        "source_sha256": sha,
        "path": dg.MetadataValue.path(paths["corpus_shards"]),
    })
    yield dg.AssetCheckResult(
        check_name=COUNTS_CHECK, passed=balanced,
        metadata={"rows_in": counts["rows_in"], **{f"{n}_rows": v for n, v in written.items()}},
        description=None if balanced else "rows were lost or duplicated between read and write",
    )
