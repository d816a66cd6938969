"""bench.method at toy scale: EntropyLong and baseline data from one corpus, the same tiny
model trained on each with the same budget under two losses, RULER and held-out perplexity
for all four runs, read back from the catalog."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import pytest
import yaml

from bench.method import DATASETS, comparison_config, records, run_comparison, run_name, table
from orchestration.config import load_config
from orchestration.lake_assets import REGISTRY, recorded_reads


def test_the_comparison_config_keeps_the_base_and_sets_one_run_per_pair(tiny_config, tmp_path):
    path = comparison_config(tiny_config, tmp_path / "cmp", ["uniform", "sparse"], steps=5,
                             lengths=None, model=None, limit=None, target_length=4096)
    raw = yaml.safe_load(path.read_text())
    base = yaml.safe_load(tiny_config.read_text())
    assert raw["lake"] == str((tmp_path / "cmp" / "lake").resolve())
    assert [r["name"] for r in raw["training"]["runs"]] == [
        "entropylong-uniform", "entropylong-sparse", "baseline-uniform", "baseline-sparse"]
    assert {r["dataset"] for r in raw["training"]["runs"]} == set(DATASETS)
    assert raw["training"]["steps"] == 5
    assert raw["training"]["model"] == base["training"]["model"]
    # the longest lengths the model was trained at
    assert raw["packing"]["target_length"] == 4096
    assert raw["evaluation"]["lengths"] == [2048, 4096]
    # corpora and the local scorer still point at the base's files
    for corpus in raw["corpora"]:
        assert corpus["uri"].startswith(str(tiny_config.parent))
    assert raw["models"]["scorer"] == base["models"]["scorer"]


@pytest.mark.slow  # trains and evaluates four runs (lm-eval's RULER on a tiny model)
def test_four_runs_train_alike_and_are_compared_on_ruler(tiny_config, tmp_path):
    path = comparison_config(tiny_config, tmp_path / "cmp", ["uniform", "sparse"], steps=2,
                             lengths=[512], model=None, limit=1, target_length=None)
    with recorded_reads() as reads:
        c = run_comparison(path, log=lambda _: None)
    # what every asset read, over the whole run, is exactly what it declares
    read: dict = {}
    for asset, name, scope in reads:
        read.setdefault(asset, {})[name] = scope
    assert read == {name: spec.reads for name, spec in REGISTRY.items() if spec.reads}
    names = {run_name(d, loss) for d in DATASETS for loss in ("uniform", "sparse")}
    assert {r["run"] for r in c.runs} == names
    # the same budget: every run took the same optimizer steps over sequences of one length
    assert {r["steps"] for r in c.runs} == {2}
    by = {r["run"]: r for r in c.runs}
    assert by["entropylong-sparse"]["mode"] == "sparse" and by["entropylong-sparse"]["frozen"]
    assert by["baseline-uniform"]["dataset"] == "baseline"
    assert c.lengths == [512]
    for n in names:
        assert 0.0 <= c.ruler[("niah_single_1", n)] <= 1.0
        ppl = [v for (_, r), v in c.heldout.items() if r == n]
        assert ppl and all(math.isfinite(v) and v > 1 for v in ppl)
    recs = records(c, ["uniform", "sparse"], {})
    assert [r.metric.split("(")[1].split(")")[0] for r in recs] == ["uniform", "sparse"]
    for r in recs:
        assert r.value == c.ruler[("niah_single_1", run_name("entropylong", r.metric.split(
            "(")[1].split(")")[0]))]
    text = table(c)
    assert all(n in text for n in names) and "RULER mean" in text
    # per step metrics of every run; sparse keeps kappa 0.4 of the tokens
    config = load_config(path)
    con = duckdb.connect(config.catalog_path, read_only=True)
    steps = dict(con.execute("SELECT run, max(weight_nonzero) FROM training_metrics "
                             "WHERE isfinite(loss_unweighted) GROUP BY run").fetchall())
    assert set(steps) == names
    assert steps["entropylong-sparse"] < 0.5 and steps["entropylong-uniform"] == 1.0
    # the distance check ran on the packed dependencies
    sampled = con.execute("SELECT count(*) FROM distance_checks").fetchone()[0]
    assert sampled == min(64, con.execute("SELECT count(*) FROM packed_dependencies "
                                          "WHERE dataset = 'entropylong'").fetchone()[0])
    con.close()
    lake = Path(config.lake)
    assert all((lake / f"trained_model/{n}/model/config.json").exists() for n in names)
