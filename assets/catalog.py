"""`stats_catalog`: the DuckDB file of SQL views over every lake table."""

import dagster as dg

from lakehouse.catalog import GROUND_TRUTH, build_catalog, parquet_relation, query, source_assets
from orchestration.automation import FOLLOW_INPUTS
from orchestration.lake_assets import PLANTED_GROUND_TRUTH, StageContext, lake_asset

# launched by hand (GPU steps after packing): the catalog does not wait for runs never made
BY_HAND = ("distance_check", "trained_model", "evaluation")


@lake_asset(
    reads={**{a: "all" for a in sorted(source_assets())}, PLANTED_GROUND_TRUTH: "all"},
    settings=["catalog"], group="catalog", kinds=["duckdb", "sql"], pool="duckdb_writer",
    automation=FOLLOW_INPUTS.ignore(dg.AssetSelection.assets(*BY_HAND)),
    description="DuckDB catalog with the views of sql/views over the lake's Parquet outputs; "
                "open it read-only: duckdb -readonly lake/catalog.duckdb",
)
def stats_catalog(ctx: StageContext):
    for table in sorted(source_assets()):
        ctx.input_path(table)  # the views read every partition of these tables
    out = ctx.settings.catalog_path
    extra = {"ground_truth": parquet_relation(ctx.ground_truth_files(), GROUND_TRUTH)}
    views = build_catalog(ctx.settings.lake_store, out, extra=extra)
    cols, rows = query(out, "SELECT * FROM corpus_summary", ctx.settings.lake)
    ctx.log.info(f"catalog {out}: {len(views)} views")
    table = "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
                      + ["| " + " | ".join(str(v) for v in r) + " |" for r in rows])
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(out), "views": dg.MetadataValue.json(views),
        "corpus_summary": dg.MetadataValue.md(table)})
