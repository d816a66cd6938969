"""The fused entropy/NLL head (torch.compile) equals the plain computation and the naive
full-logits reference; compile settings and the logged fallback."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from models.fused_head import compile_wanted, fused_reduce, plain_reduce, reducer
from models.scoring import (
    HeadTransform,
    ScoringConfig,
    entropy_nll_from_hidden,
    naive_scores,
    score_positions,
    score_sequences,
)


def _logits(rows=37, vocab=501, seed=0, spread=4.0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(rows, vocab, generator=g) * spread
    targets = torch.randint(0, vocab, (rows,), generator=g)
    return z, targets


def _reference(z, targets):
    logp = torch.log_softmax(z.double(), -1)
    return -(logp.exp() * logp).sum(-1), -logp.gather(1, targets[:, None]).squeeze(1)


@pytest.mark.parametrize("fn", [plain_reduce, fused_reduce])
def test_both_reductions_equal_log_softmax_in_float64(fn):
    z, targets = _logits()
    ent, nll = fn(z.clone(), targets)
    ref_ent, ref_nll = _reference(z, targets)
    assert ent.dtype == nll.dtype == torch.float32
    np.testing.assert_allclose(ent, ref_ent, atol=1e-4)
    np.testing.assert_allclose(nll, ref_nll, atol=1e-4)


def test_soft_capping_and_scale_are_applied_inside_the_reduction():
    z, targets = _logits(seed=1)
    t = HeadTransform(scale=0.5, cap=3.0)
    ref_ent, ref_nll = _reference(t(z), targets)
    for fn in (plain_reduce, fused_reduce):
        ent, nll = fn(z.clone(), targets, t.scale, t.cap)
        np.testing.assert_allclose(ent, ref_ent, atol=1e-4)
        np.testing.assert_allclose(nll, ref_nll, atol=1e-4)


def test_compile_modes_choose_the_device():
    assert compile_wanted("cuda", "auto") and compile_wanted("cpu", "on")
    assert not compile_wanted("cpu", "auto") and not compile_wanted("cuda", "off")
    assert reducer("cpu", "off") is plain_reduce and reducer("cpu", "auto") is plain_reduce
    with pytest.raises(ValueError, match="compile"):
        compile_wanted("cpu", "yes")


@pytest.mark.slow  # one Inductor compile (C++ on CPU, cached on disk afterwards)
@pytest.mark.parametrize("block_size", [1, 7, 64, 4096])
def test_compiled_head_equals_naive_scores_at_every_block_size(tiny_llama, block_size):
    rng = np.random.default_rng(3)
    docs = [rng.integers(0, 97, n).astype(np.int32) for n in (50, 3, 120, 17, 2)]
    on = ScoringConfig(block_size=block_size, token_budget=300, compile="on")
    got = score_sequences(tiny_llama, docs, on)  # padded batches of several lengths
    for doc, s in zip(docs, got, strict=True):
        ref = naive_scores(tiny_llama, doc)
        np.testing.assert_allclose(s.entropy[1:], ref.entropy[1:], atol=1e-4)
        np.testing.assert_allclose(s.nll[1:], ref.nll[1:], atol=1e-4)
    pos = [np.array([1, 30, 49]), np.array([2]), np.array([5, 119])]
    off = ScoringConfig(block_size=block_size, token_budget=300, compile="off")
    for a, b in zip(score_positions(tiny_llama, docs[:3], pos, on),
                    score_positions(tiny_llama, docs[:3], pos, off), strict=True):
        np.testing.assert_allclose(a.entropy, b.entropy, atol=1e-4)
        np.testing.assert_allclose(a.nll, b.nll, atol=1e-4)


@pytest.mark.slow
def test_compiled_head_from_hidden_states_with_any_callable_transform(tiny_llama):
    head = tiny_llama.get_output_embeddings()
    hidden = torch.randn(45, head.weight.shape[1], generator=torch.Generator().manual_seed(4))
    targets = torch.randint(0, head.weight.shape[0], (45,))
    for transform in (HeadTransform(cap=2.0), lambda x: torch.tanh(x / 2.0) * 2.0):
        ent, nll = entropy_nll_from_hidden(hidden, targets, head, 16, transform, "on")
        with torch.no_grad():
            ref_ent, ref_nll = _reference(torch.tanh(head(hidden) / 2.0) * 2.0, targets)
        np.testing.assert_allclose(ent, ref_ent, atol=1e-4)
        np.testing.assert_allclose(nll, ref_nll, atol=1e-4)


def test_a_failing_compiler_falls_back_to_the_plain_path_and_says_so(caplog):
    from models import fused_head

    z, targets = _logits(rows=5, vocab=33)
    broken = fused_head.GuardedReducer("test-broken", compiler=_no_compiler)
    with caplog.at_level(logging.WARNING, logger="models.fused_head"):
        ent, nll = broken(z.clone(), targets)
        broken(z.clone(), targets)
    ref_ent, ref_nll = _reference(z, targets)
    np.testing.assert_allclose(ent, ref_ent, atol=1e-4)
    np.testing.assert_allclose(nll, ref_nll, atol=1e-4)
    assert broken.failed and "no C++ compiler" in broken.failed
    assert sum("plain path" in r.message for r in caplog.records) == 1  # logged once


def _no_compiler(fn, **_):
    """What torch.compile's first call raises where no C++ compiler / Triton exists."""
    def run(*args):
        raise RuntimeError("no C++ compiler found")
    return run


def test_the_compile_setting_reads_yaml_on_and_off():
    import yaml

    from models.settings import KernelSettings

    assert KernelSettings(**yaml.safe_load("compile: on")).compile == "on"
    assert KernelSettings(**yaml.safe_load("compile: off")).compile == "off"
    assert KernelSettings().compile == "auto" and ScoringConfig().compile == "auto"
    with pytest.raises(ValueError):
        KernelSettings(compile="sometimes")
