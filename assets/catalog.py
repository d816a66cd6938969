"""`stats_catalog`: the DuckDB file of SQL views over every lake table."""

import dagster as dg

from lakehouse.catalog import GROUND_TRUTH, build_catalog, parquet_relation, query
from lakehouse.demo import ground_truth_files
from orchestration.k8s import op_tags
from orchestration.resources import PipelineResource


def _ground_truth_relation(pipeline: PipelineResource) -> str:
    return parquet_relation(ground_truth_files(pipeline.settings.corpus_specs()), GROUND_TRUTH)


@dg.asset(
    op_tags=op_tags("cpu"),
    deps=["corpus_shards", "entropy_profiles", "anchors", "chunks", "retrieval_candidates",
          "trained_model", "evaluation",
          "verified_dependencies", "packed_dataset", "baseline_dataset"],
    group_name="catalog",
    kinds={"duckdb", "sql"},
    pool="duckdb_writer",
    description="DuckDB catalog with the views of sql/views over the lake's Parquet outputs; "
                "open it read-only: duckdb -readonly lake/catalog.duckdb",
)
def stats_catalog(context: dg.AssetExecutionContext, pipeline: PipelineResource):
    out = pipeline.settings.catalog_path
    extra = {"ground_truth": _ground_truth_relation(pipeline)}
    views = build_catalog(pipeline.lake, out, extra=extra)
    cols, rows = query(out, "SELECT * FROM corpus_summary")
    context.log.info(f"catalog {out}: {len(views)} views")
    table = "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
                      + ["| " + " | ".join(str(v) for v in r) + " |" for r in rows])
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(out),
        "views": dg.MetadataValue.json(views),
        "corpus_summary": dg.MetadataValue.md(table),
    })
