"""`unit_counts` (+ `term_counts`) per shard and `recurring_text` (+ `term_frequencies`) per
lake: the corpus statistics that tell copies from dependencies.

Sentences and lines that recur across documents (navigation, disclaimers, quoted passages)
are counted as web-corpus pipelines count boilerplate lines, a hash per unit and the
documents holding it; anchors are never placed inside recurring text and a chunk that
repeats it is a copy, not a dependency. Word document frequencies tell a chunk that
explains a rare name from one that shares a template's words with the root.
"""

import hashlib
import json

import dagster as dg
import pyarrow as pa

from lakehouse.recurring import document_frequencies, recurring_units, term_counts
from lakehouse.recurring import unit_counts as count_units
from lakehouse.storage import write_parquet
from orchestration.automation import FOLLOW_INPUTS
from orchestration.lake_assets import StageContext, lake_asset


@lake_asset(
    partitions="shards", reads={"corpus_shards": "shard"}, settings=["recurring"],
    group="ingest", automation=FOLLOW_INPUTS,
    outputs={"term_counts": "Per shard: documents holding each word (hash)."},
    description="Per shard: every sentence or line of at least `recurring.min_chars` "
                "characters (normalized, hashed) with the number of documents holding it.",
)
def unit_counts(ctx: StageContext):
    texts = ctx.shard_table("corpus_shards", ["text"])["text"].to_pylist()
    units = count_units(texts, ctx.settings.recurring)
    terms = term_counts(texts)
    paths = {"unit_counts": ctx.write_shard(units),
             "term_counts": ctx.write_shard(terms, "term_counts")}
    for name, table in (("unit_counts", units), ("term_counts", terms)):
        yield dg.MaterializeResult(asset_key=name, metadata={
            "dagster/row_count": table.num_rows, "path": dg.MetadataValue.path(paths[name])})


@lake_asset(
    reads={"unit_counts": "all", "term_counts": "all", "corpus_shards": "all"},
    settings=["recurring"], group="ingest", automation=FOLLOW_INPUTS,
    outputs={"term_frequencies": "Documents holding each word, over the whole lake."},
    description="Sentences and lines that recur in at least `recurring.min_docs` documents "
                "(boilerplate, templates, quotations), most frequent first, with an example.",
)
def recurring_text(ctx: StageContext):
    units = [ctx.lake_dataset("unit_counts").to_table()]
    terms = [ctx.lake_dataset("term_counts").to_table()]
    n_docs = ctx.lake_dataset("corpus_shards").count_rows()
    table, stats = recurring_units(units, ctx.settings.recurring)
    freq, fstats = document_frequencies(terms, n_docs)
    path = write_parquet(table, ctx.output_path("recurring_text.parquet"))
    fpath = write_parquet(freq, ctx.output_path("term_frequencies.parquet",
                                                asset="term_frequencies"))
    top = table.slice(0, 10).to_pylist()
    md = "\n".join(["| documents | text |", "|---|---|"]
                   + [f"| {r['docs']} | {' '.join(r['example'].split())[:120]} |" for r in top])
    ctx.log.info(f"{stats['recurring_units']} recurring units of {stats['units']}; "
                 f"{fstats['terms']} words over {n_docs} documents")
    # what readers use is the set of recurring units, not their counts: its hash is the data
    # version, so anchors follow a recount only when the set moved (follow_changes)
    version = hashlib.sha256(json.dumps([sorted(table["unit_hash"].to_pylist()),
                                         ctx.settings.recurring.model_dump()]).encode())
    yield dg.MaterializeResult(asset_key="recurring_text", data_version=dg.DataVersion(
        version.hexdigest()[:16]), metadata={
        **stats, "most_frequent": dg.MetadataValue.md(md or "(none)"),
        "dagster/row_count": table.num_rows, "path": dg.MetadataValue.path(path)})
    yield dg.MaterializeResult(asset_key="term_frequencies", metadata={
        **fstats, "dagster/row_count": freq.num_rows, "path": dg.MetadataValue.path(fpath)})


def recurring_set(ctx: StageContext) -> frozenset[int]:
    """The recurring unit hashes (for anchors and verification)."""
    table = ctx.lake_dataset("recurring_text", "recurring_text.parquet").to_table(
        columns=["unit_hash"])
    return frozenset(table["unit_hash"].to_pylist())


def term_frequency(ctx: StageContext) -> tuple[dict[int, int], int]:
    """(word hash -> documents holding it, documents in the lake)."""
    t: pa.Table = ctx.lake_dataset("term_frequencies", "term_frequencies.parquet").to_table()
    return (dict(zip(t["term_hash"].to_pylist(), t["docs"].to_pylist(), strict=True)),
            ctx.lake_dataset("corpus_shards").count_rows())
