"""bench.cost's arithmetic on a configuration small enough to count by hand."""

from __future__ import annotations

import pytest

from bench.cost import (
    ModelSpec,
    RunConfig,
    demo_check,
    scored_tokens,
    stages,
    verification_tokens,
)

TIED = ModelSpec("t", params=1000, layers=2, d_model=10, vocab=20, tied=True)
UNTIED = ModelSpec("u", params=1000, layers=2, d_model=10, vocab=20, tied=False)


def test_forward_and_training_flops_count_body_head_and_attention():
    assert TIED.body == 800 and UNTIED.body == 600 and TIED.head == 200
    # 2 * 800 * 5 body + 2 * 200 * 2 head rows + 4 * 2 layers * 10 * 3 keys * 5 tokens
    assert TIED.forward_flops(5, 2, 3) == 8000 + 800 + 1200
    # training: 3x a forward with the head on every token
    assert TIED.train_flops(5, 3) == 3 * (8000 + 2000 + 1200)


def test_long_roots_are_scored_in_overlapping_windows():
    assert scored_tokens(30, 40, 10) == 30
    assert scored_tokens(100, 40, 10) == 3 * 40  # starts 0, 30, 60


def _cfg(**kw) -> RunConfig:
    base = dict(roots=2, root_tokens=10, scorer_window=40, scorer_overlap=10, pool_chunks=5,
                chunk_tokens=4, anchors_per_root=3, k=2, rows_per_pair=2, roots_per_chunk=1,
                query_tokens=2, embed_dim=3, kept_chunks_per_root=1, train_tokens=100,
                train_context=20, short_context=0, scorer=TIED, embedder=TIED, trained=TIED,
                gpu_flops=1000, mfu=0.5, cpu_core_flops=100, cpu_efficiency=0.5,
                hnsw_rows_per_partition=10, pack_tokens_per_core_s=7)
    base.update(kw)
    return RunConfig(**base)


def test_verification_counts_passes_tokens_and_head_rows():
    v = verification_tokens(_cfg())
    # 2 roots x 3 anchors x K 2 = 12 rows in 6 (root, chunk) passes of [4-token chunk; root]
    assert (v["rows"], v["pairs"]) == (12, 6)
    assert v["pair_tokens"] == 6 * 4 + 6 * 10 and v["baseline_tokens"] == 20
    assert v["head_rows"] == 6 * 10 + 20  # positions all: every root row, baselines too
    shared = verification_tokens(_cfg(roots_per_chunk=2))
    assert shared["pair_tokens"] == 6 * 4 / 2 + 6 * 10
    anchors = verification_tokens(_cfg(positions="anchors"))
    assert anchors["head_rows"] == 12 + 20 and anchors["pair_tokens"] == 24 + 6 * 10 * 2 / 3


def test_stage_hours_are_flops_over_the_rate():
    by = {s.name: s for s in stages(_cfg())}
    # scoring: 20 tokens, head on all, context (10 + 1) / 2; GPU rate 1000 * 0.5
    flops = 2 * 800 * 20 + 2 * 200 * 20 + 4 * 2 * 10 * 5.5 * 20
    assert by["scoring"].flops == pytest.approx(flops)
    assert by["scoring"].hours == pytest.approx(flops / 500 / 3600)
    # index: 5 rows, one list, 1 distance + M 20 x ef_c 150, 2 * dim 3 FLOPs; CPU rate 50
    assert by["index build"].flops == pytest.approx(5 * (1 + 20 * 150) * 6)
    assert by["index build"].device == "cpu"
    assert by["index build"].hours == pytest.approx(by["index build"].flops / 50 / 3600)
    # packing: 2 roots x (10 + 1 chunk x 4) tokens at 7 per core-second
    assert by["packing"].hours == pytest.approx(28 / 7 / 3600)
    assert by["training"].flops == pytest.approx(TIED.train_flops(100, 10.5))
    assert "token weights" not in by  # short_context 0


def test_the_demo_check_divides_flops_by_the_measured_rate():
    steps = [{"asset": "entropy_profiles", "seconds": 4.0, "tokens": 100, "docs": 2},
             {"asset": "entropy_profiles", "seconds": 6.0, "tokens": 100, "docs": 2}]
    (row,) = demo_check(steps, flops_per_s=1e9, cores=2)
    from bench.cost import SMOLLM2_135M

    expected = SMOLLM2_135M.forward_flops(200, 200, 25.5)  # 4 docs of 50 tokens
    assert row["stage"] == "scoring" and row["measured_s"] == 10.0
    assert row["predicted_s"] == pytest.approx(expected / 1e9)
    assert row["measured_over_predicted"] == pytest.approx(10.0 / (expected / 1e9))


def test_a_loaded_models_spec_counts_its_matmuls_and_keys():
    """bench.mfu's FLOPs: the spec read off a model has its layers' matmul parameters as the
    body (untied: both embedding matrices left out), and keys attended sum n (n + 1) / 2."""
    from bench.mfu import attention_keys, spec_of
    from tests.conftest import make_tiny_llama

    model = make_tiny_llama()
    spec = spec_of(model, "tiny")
    layers = sum(p.numel() for p in model.model.layers.parameters()) + \
        model.model.norm.weight.numel()
    assert (spec.layers, spec.d_model, spec.vocab, spec.tied) == (2, 32, 97, False)
    assert spec.body == layers
    assert attention_keys([1, 3]) == 1 + 6
