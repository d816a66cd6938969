"""`corpus_shards`: one shard of a raw corpus, cleaned into the lake, with its quarantine,
duplicates and statistics as declared outputs of the same step."""

import dagster as dg
import pyarrow.parquet as pq

from lakehouse.corpora import file_sha256
from lakehouse.ingest import ingest_rows, shard_stats
from lakehouse.readers import read_shard
from orchestration.discovery import find_shard
from orchestration.lake_assets import StageContext, lake_asset

COUNTS_CHECK = "counts_balance"
SIDE_OUTPUTS = {
    "quarantine": "Rows of the shard that could not be ingested: file, row, field, reason.",
    "duplicates": "Exact duplicates dropped from the shard (kept doc_id and the copy's row).",
    "shard_stats": "Per shard: rows in, docs out, duplicates, quarantined, source hash.",
}


@lake_asset(
    partitions="shards", settings=["corpora", "ingest"], group="ingest",
    kinds=["parquet", "python"], outputs=SIDE_OUTPUTS,
    checks=[(COUNTS_CHECK, "rows in = docs out + duplicates + quarantined, counted from the "
                           "written files", True)],
    description="Cleaned documents of one corpus shard (NFC, control characters removed, "
                "stable doc_id, exact duplicates removed); bad rows go to `quarantine`.",
)
def corpus_shards(ctx: StageContext):
    corpus, shard = ctx.corpus_shard
    config = ctx.settings
    ref = find_shard(config, ctx.partition_key)
    sha, size = file_sha256(ref.uri)
    max_chars = config.ingest.max_chars
    result = ingest_rows(read_shard(ref.uri, config.corpus(corpus)), corpus, shard, ref.uri,
                         max_chars)
    stats = shard_stats(result, corpus, shard, ref.uri, sha, size, max_chars)
    paths = {"corpus_shards": ctx.write_shard(result.docs),
             "quarantine": ctx.write_shard(result.quarantine, "quarantine"),
             "duplicates": ctx.write_shard(result.duplicates, "duplicates"),
             "shard_stats": ctx.write_shard(stats, "shard_stats")}
    counts = result.counts
    ctx.log.info(f"{ctx.partition_key}: {counts['rows_in']} rows -> {counts['docs_out']} docs, "
                 f"{counts['duplicates']} duplicates, {counts['quarantined']} quarantined")
    reasons = result.quarantine.group_by("reason").aggregate([("reason", "count")]).to_pylist()
    written = {n: pq.ParquetFile(p).metadata.num_rows for n, p in paths.items()}
    yield dg.MaterializeResult(asset_key="corpus_shards", metadata={
        **{k: dg.MetadataValue.int(v) for k, v in counts.items()},
        "dagster/row_count": dg.MetadataValue.int(counts["docs_out"]),
        "quarantine_reasons": dg.MetadataValue.json(
            {r["reason"]: r["reason_count"] for r in reasons}),
        "source": dg.MetadataValue.path(ref.uri), "source_sha256": sha,
        "path": dg.MetadataValue.path(paths["corpus_shards"])})
    for name in SIDE_OUTPUTS:
        yield dg.MaterializeResult(asset_key=name, metadata={
            "dagster/row_count": written[name], "path": dg.MetadataValue.path(paths[name])})
    balanced = counts["rows_in"] == (written["corpus_shards"] + written["duplicates"]
                                     + written["quarantine"])
    yield dg.AssetCheckResult(
        check_name=COUNTS_CHECK, asset_key="corpus_shards", passed=balanced,
        metadata={"rows_in": counts["rows_in"],
                  **{f"{n}_rows": v for n, v in written.items() if n != "shard_stats"}},
        description=None if balanced else "rows were lost or duplicated between read and write")
