"""The catalog views over verified_dependencies: classes per rule and origin, and the sample
of kept dependencies with the root text around the judged span."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from lakehouse import tables
from lakehouse.catalog import GROUND_TRUTH, build_catalog, parquet_relation
from lakehouse.dependencies import DecisionSettings
from lakehouse.storage import Lake, write_parquet
from tests.test_dependencies import CANDS, IDS, TEXT, _inputs, _offsets, _rows_and_passes, decide


def test_views_show_classes_and_the_kept_entity_in_context(tmp_path):
    import duckdb

    rows, passes = _rows_and_passes()
    rows["h_prime"][1], rows["status"][1] = np.nan, "too_long"  # a row without H'
    truth = [{"root_doc_id": "d", "source_doc_id": "S", "kind": "person",
              "surface": "Marta Quorvath", "char_start": 6, "char_end": 21}]
    # copies kept, and judged entity by entity (with the whole root judged, priming: root, the
    # copy, which repeats the whole root, would be the only candidate left)
    table, _ = decide(_inputs(CANDS), rows, passes,
                      DecisionSettings(copies="keep", priming="off"))
    lake = Lake(tmp_path / "lake")
    write_parquet(table, lake.shard_path("verified_dependencies", "demo", "s0"))
    write_parquet(tables.from_rows([{
        "doc_id": "d", "corpus": "demo", "shard": "s0", "row_index": 0, "source_id": "d",
        "text": TEXT, "n_chars": len(TEXT), "content_hash": "x"}], tables.DOCS),
        lake.shard_path("corpus_shards", "demo", "s0"))
    starts, ends = _offsets()
    write_parquet(tables.from_rows([{
        "doc_id": "d", "n_tokens": len(IDS), "input_ids": IDS.tolist(),
        "char_start": starts.tolist(), "char_end": ends.tolist(), "tokenizer": "t"}],
        tables.TOKENIZED_DOCS), lake.shard_path("tokenized_docs", "demo", "s0"))
    write_parquet(tables.from_rows([{
        "chunk_id": "src", "doc_id": "S", "corpus": "demo", "shard": "s0", "chunk_index": 0,
        "token_start": 0, "token_end": 4, "n_tokens": 4, "text": "Marta Quorvath founded it.",
        "input_ids": [1, 2, 3, 4]}], tables.CHUNKS), lake.shard_path("chunks", "demo", "s0"))
    gt = tmp_path / "gt.parquet"
    write_parquet(pa.Table.from_pylist(truth, schema=GROUND_TRUTH), str(gt))
    out = tmp_path / "catalog.duckdb"
    build_catalog(lake, str(out), {"ground_truth": parquet_relation([str(gt)], GROUND_TRUTH)})
    con = duckdb.connect(str(out), read_only=True)
    classes = con.execute("SELECT origin, dependency_class, rows, passed, kept FROM "
                          "dependency_classes ORDER BY ALL").fetchall()
    assert ("span", "informative", 1, 1, 1) in classes
    assert ("span", "copy", 1, 1, 1) in classes  # copies: keep
    sample = con.execute("SELECT root_context, chunk_start, true_source, dependency_class "
                         "FROM kept_dependency_samples WHERE chunk_id = 'src'").fetchall()
    assert len(sample) == 1
    context, chunk, true_source, cls = sample[0]
    assert "**Marta Quorvath**" in context and chunk.startswith("Marta Quorvath founded")
    assert true_source is True and cls == "informative"
    copy = con.execute("SELECT true_source FROM kept_dependency_samples "
                       "WHERE dependency_class = 'copy'").fetchall()
    assert copy == [(False,)]
    # dependency_stats (view 33) averages delta_i: the unscored row is NULL there, not NaN
    mean, too_long = con.execute("SELECT mean_delta_i, too_long FROM dependency_stats"
                                 ).fetchone()
    assert np.isfinite(mean) and too_long == 1
    # the "no verification" rule (view 41) keeps each anchor's top-ranked retrieval row only:
    # span rows (origin 'span') exist only after verification and are never counted there
    top1 = {(r["doc_id"], r["chunk_doc_id"]) for r in table.to_pylist()
            if r["rank"] == 1 and r["origin"] == "anchor"}
    assert any(r["origin"] == "span" and r["rank"] == 1 for r in table.to_pylist())
    kept = con.execute("SELECT kept FROM planted_dependency_quality "
                       "WHERE rule = 'top1_unverified' AND level = 'pair'").fetchone()[0]
    assert kept == len(top1)
    # at the span level: the anchor at token 7 lies outside the planted span, so no top-1
    # row is judged there (the span row at token 3 would have been, before view 41 said so)
    span_kept = con.execute("SELECT kept FROM planted_dependency_quality "
                            "WHERE rule = 'top1_unverified' AND level = 'span'").fetchone()[0]
    assert span_kept == 0
