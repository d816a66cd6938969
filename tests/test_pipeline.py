"""The whole stage-1/2 asset graph, in process, on a small demo with a tiny scorer."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse.packed_files import read_sequences, sequence_files
from orchestration.cli import register
from orchestration.config import load_config
from orchestration.definitions import build_definitions
from orchestration.discovery import configured_shards
from orchestration.jobs import DATA_STAGES, TRAIN_STAGES, run_stages
from tests.conftest import materialize, write_tiny_config


def run_pipeline(config_path: Path, instance: dg.DagsterInstance, train: bool = False,
                 weights: bool = True) -> list:
    """Run the jobs in the order `make demo` does; returns all check evaluations.

    ``weights`` also scores tokens for the weighted loss; ``train`` runs the training stages
    too (token weights, the distance check, every configured run and its evaluation;
    tests/test_method_comparison.py runs them).
    """
    defs = build_definitions(str(config_path))
    register(config_path, instance)
    stages = DATA_STAGES + (TRAIN_STAGES if train else ("weigh_tokens",) if weights else ())
    return run_stages(defs, instance, stages, log=lambda _: None)


@pytest.fixture(scope="module")
def pipeline_lake(tmp_path_factory):
    """One run of the data jobs (and token weights) on the tiny config, shared by the tests
    of this module that read its lake: (config path, instance, check evaluations)."""
    folder = tmp_path_factory.mktemp("pipeline")
    with pytest.MonkeyPatch.context() as mp:
        path = write_tiny_config(folder)
        mp.setenv("ELONG_CONFIG", str(path))
        instance = dg.DagsterInstance.ephemeral()
        yield path, instance, run_pipeline(path, instance)


@pytest.mark.slow  # loads MiniLM
def test_stage_one_and_two_assets_run_end_to_end(pipeline_lake):
    tiny_config, instance, checks = pipeline_lake
    assert checks and all(c.passed for c in checks), [c for c in checks if not c.passed]
    assert {c.check_name for c in checks} >= {"counts_balance", "token_offsets_valid",
                                              "entropy_in_range", "no_self_candidates",
                                              "delta_i_in_range",
                                              "sequences_exact_and_spans_valid"}
    config = load_config(tiny_config)
    con = duckdb.connect(config.catalog_path, read_only=True)
    # tokens are conserved: every root document is profiled with its full token count
    (mismatch,) = con.execute("""SELECT count(*) FROM tokenized_docs t JOIN entropy_profiles p
                             USING (doc_id) WHERE t.n_tokens <> p.n_tokens""").fetchone()
    (profiled,) = con.execute("SELECT count(*) FROM entropy_profiles").fetchone()
    (roots,) = con.execute("SELECT count(*) FROM docs WHERE corpus <> 'planted-pool'"
                           ).fetchone()
    assert mismatch == 0 and profiled == roots  # every corpus but the planted pool is a root
    (anchors,) = con.execute("SELECT count(*) FROM anchors").fetchone()
    assert anchors > 0
    # every anchor's score (H, or a word's summed NLL) is above its document's threshold
    bad = con.execute("""SELECT count(*) FROM anchors a JOIN entropy_profiles p USING (doc_id)
                     WHERE a.score <= a.threshold - 0.01
                        OR (a.rule = 'entropy' AND a.entropy <= a.threshold - 0.01)"""
                      ).fetchone()[0]
    assert bad == 0
    per_anchor = con.execute("""SELECT max(rank), min(rank), count(*) FILTER
                            (WHERE chunk_doc_id = doc_id) FROM retrieval_candidates""").fetchone()
    assert per_anchor == (3, 1, 0)
    # every candidate was verified once, with dI = (H - H') / H and the epsilon rule
    (n_cand,) = con.execute("SELECT count(*) FROM retrieval_candidates").fetchone()
    # (a root too long to fit beside a chunk in the window is marked, not scored: NaN)
    dep = con.execute("""SELECT count(*), count(*) FILTER (WHERE status = 'ok'),
                         max(abs(delta_i - (h - h_prime) / h)) FILTER (WHERE status = 'ok'),
                         count(*) FILTER (WHERE status = 'ok' AND (passed <> (delta_i > epsilon)
                                          OR verified <> (passed AND
                                                          dependency_class <> 'copy'))),
                         count(*) FILTER (WHERE isnan(delta_i) <> (status <> 'ok')),
                         count(*) FILTER (WHERE status NOT IN ('ok', 'too_long')),
                         count(*) FILTER (WHERE status = 'too_long' AND verified)
                         FROM verified_dependencies""").fetchone()
    assert dep[0] == n_cand and dep[1] > 0 and dep[2] < 1e-5, dep
    assert dep[3:] == (0, 0, 0, 0), dep  # kept = passed dI > epsilon and not a copy (dropped)
    # the packed dataset reads back into units [verified chunks; root] with exact spans
    lake = Path(config.lake)
    seqs = read_sequences(str(lake / "packed_dataset")).to_pylist()
    assert sequence_files(str(lake / "packed_dataset"))  # part files, no single file
    assert not (lake / "packed_dataset/sequences.parquet").exists()
    man = pq.read_table(lake / "packed_dataset/manifest.parquet").to_pylist()
    assert seqs and all(len(s["input_ids"]) == 8192 for s in seqs)
    verified_pairs = set(con.execute("SELECT doc_id, chunk_id FROM verified_dependencies "
                                     "WHERE verified").fetchall())
    packed_pairs = {(m["root_doc_id"], c) for m in man for c in m["chunk_ids"]}
    assert packed_pairs <= verified_pairs
    # a unit that fits the target keeps every verified chunk; a longer one loses leading chunks
    unit_len = dict(con.execute("""SELECT v.doc_id, any_value(t.n_tokens)
                                   + sum(c.token_end - c.token_start)
                                   FROM (SELECT DISTINCT doc_id, chunk_id FROM
                                         verified_dependencies WHERE verified) v
                                   JOIN chunks c USING (chunk_id)
                                   JOIN tokenized_docs t ON t.doc_id = v.doc_id
                                   GROUP BY v.doc_id""").fetchall())
    fits = {d for d, n in unit_len.items() if n <= 8192}
    assert fits and {p for p in verified_pairs if p[0] in fits} <= packed_pairs
    toks = {r["doc_id"]: r["input_ids"] for r in pq.ParquetDataset(
        lake / "tokenized_docs").read(columns=["doc_id", "input_ids"]).to_pylist()}
    assert con.execute("SELECT units FROM packing_stats WHERE dataset = 'entropylong'"
                       ).fetchone() == (len(man),)
    # the baseline holds whole random documents (no chunks) and at least as many tokens
    base = con.execute("SELECT sum(token_end - token_start), max(len(chunk_ids)) "
                       "FROM packed_manifest WHERE dataset = 'baseline'").fetchone()
    used = sum(m["token_end"] - m["token_start"] for m in man)
    assert base[0] >= used and base[1] == 0
    quality = con.execute("SELECT rule, level, truth, kept, true_kept, truth_found "
                          "FROM planted_dependency_quality").fetchall()
    assert [q[:2] for q in quality] == [("verified", "span"), ("top1_unverified", "span"),
                                        ("verified", "pair"), ("top1_unverified", "pair")]
    # 4 planted stories, 4 facts each
    assert all(q[2] == (16 if q[1] == "span" else 4) for q in quality)
    assert all(0 <= q[4] <= q[3] and q[5] <= q[2] for q in quality)
    for m in man:
        ids = seqs[m["seq_id"]]["input_ids"]
        assert [m["token_start"], m["token_end"]] in seqs[m["seq_id"]]["indices"]
        assert ids[m["root_start"]:m["root_end"]] == toks[m["root_doc_id"]]
    # each verified dependency's distance is a position in input_ids (packing.layout: unit)
    deps = pq.read_table(lake / "packed_dataset/dependencies.parquet").to_pylist()
    chunk_ids = {r["chunk_id"]: r["input_ids"] for r in pq.ParquetDataset(
        lake / "chunks").read(columns=["chunk_id", "input_ids"]).to_pylist()}
    assert deps and {(d["root_doc_id"], d["chunk_id"]) for d in deps} == packed_pairs
    for d in deps:
        ids = seqs[d["seq_id"]]["input_ids"]
        assert ids[d["chunk_start"]:d["chunk_end"]] == chunk_ids[d["chunk_id"]]
        assert ids[d["anchor_position"]] == toks[d["root_doc_id"]][d["position"]]
        assert d["distance"] == d["anchor_position"] - d["chunk_start"] > 0
    assert con.execute("SELECT dataset, layout, dependencies, max FROM dependency_distances"
                       ).fetchall() == [("entropylong", "unit", len(deps),
                                         max(d["distance"] for d in deps))]
    # chunks tile their documents exactly
    gaps = con.execute("""SELECT count(*) FROM (SELECT doc_id, token_start, lag(token_end) OVER
                      (PARTITION BY doc_id ORDER BY token_start) AS prev FROM chunks)
                      WHERE prev IS NOT NULL AND prev <> token_start""").fetchone()[0]
    assert gaps == 0
    con.close()
    # a new materialization of verification costs what changed: here nothing
    _verification_rerun_forwards_nothing_and_equals_a_run_from_scratch(tiny_config, instance)


@pytest.mark.slow
def test_entropy_profiles_are_byte_identical_on_rerun(tiny_config):
    config = load_config(tiny_config)
    key = configured_shards(config)[0].key
    instance = dg.DagsterInstance.ephemeral()
    register(tiny_config, instance)
    corpus, shard = key.split("/")
    path = Path(config.lake_store.shard_path("entropy_profiles", corpus, shard))
    outputs = []
    for _ in range(2):
        materialize(tiny_config, ["corpus_shards", "tokenized_docs"], key, instance)
        materialize(tiny_config, ["entropy_profiles"], key, instance)
        outputs.append(path.read_bytes())
    assert outputs[0] == outputs[1]
    assert pq.read_table(path).num_rows > 0


@pytest.mark.slow  # loads MiniLM
def test_token_weights_join_the_packed_sequences_by_id(pipeline_lake):
    tiny_config = pipeline_lake[0]
    lake = Path(load_config(tiny_config).lake)
    for dataset, folder in (("entropylong", "packed_dataset"), ("baseline", "baseline_dataset")):
        seqs = read_sequences(str(lake / folder)).to_pylist()
        weights = pq.read_table(lake / f"token_weights/{dataset}.parquet").to_pylist()
        assert [w["seq_id"] for w in weights] == [s["seq_id"] for s in seqs]
        for s, w in zip(seqs, weights, strict=True):
            assert len(w["logp_short"]) == len(s["input_ids"]) and w["n"] == 128
            assert w["stride"] == 96
            # a unit longer than n is scored at short context past its first window; a
            # shorter one is seen whole, as the long-context model sees it
            for a, e in s["indices"]:
                if e - a > 128:
                    assert w["full_context"][a + 1] and not w["full_context"][e - 1]
                else:
                    assert all(w["full_context"][a + 1:e])


@pytest.mark.slow  # loads MiniLM
def test_every_canned_query_runs_on_the_catalog(pipeline_lake):
    from lakehouse.catalog import SQL_DIR, query

    tiny_config = pipeline_lake[0]
    catalog = load_config(tiny_config).catalog_path
    for path in sorted((SQL_DIR / "queries").glob("*.sql")):
        cols, _ = query(catalog, path.read_text())
        assert cols, path.name


def _verification_rerun_forwards_nothing_and_equals_a_run_from_scratch(
        tiny_config: Path, instance: dg.DagsterInstance) -> None:
    """A re-run with the pass store forwards no token and writes the same bytes; without it
    (from scratch) the rows and every keep decision are the same, the scores equal to float
    rounding (the passes are batched with other pairs, so sums run in another order)."""
    config = load_config(tiny_config)
    lake = Path(config.lake)
    stores = sorted((lake / "verified_dependencies" / "_passes").glob("*/*.parquet"))
    assert stores, "verification stored no passes"
    corpus, shard = stores[0].parent.name, stores[0].stem
    key = f"{corpus}/{shard}"
    out = Path(config.lake_store.shard_path("verified_dependencies", corpus, shard))
    first = out.read_bytes()
    materialize(tiny_config, ["verified_dependencies"], key, instance)
    (record,) = instance.fetch_materializations(dg.AssetRecordsFilter(
        asset_key=dg.AssetKey("verified_dependencies"), asset_partitions=[key]),
        limit=1).records
    meta = record.asset_materialization.metadata
    assert meta["passes_forwarded"].value == 0 and meta["forward_tokens"].value == 0
    assert meta["passes_reused"].value > 0
    assert out.read_bytes() == first
    stores[0].unlink()  # from scratch
    materialize(tiny_config, ["verified_dependencies"], key, instance)
    scratch = pq.read_table(out).to_pylist()
    before = pq.read_table(pa.BufferReader(first)).to_pylist()
    keys = ("doc_id", "position", "chunk_id", "origin", "verified", "passed",
            "dependency_class", "span_start", "span_end")
    assert [tuple(r[k] for k in keys) for r in scratch] == \
        [tuple(r[k] for k in keys) for r in before]
    for col in ("h", "h_prime", "nll", "nll_prime", "delta_i", "gain"):
        np.testing.assert_allclose([np.nan if r[col] is None else r[col] for r in scratch],
                                   [np.nan if r[col] is None else r[col] for r in before],
                                   atol=1e-4)
