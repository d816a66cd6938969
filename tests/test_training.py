"""The DeepSpeed trainer on a tiny Llama: every loss mode trains, resume reproduces the
loss curve (sparse draws included), attention stays inside units, the unit path and
checkpointing train exactly as the dense mask does, gradients are scaled per optimizer
step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.short_context import short_context_logprobs
from models.training import (
    InMemoryBatches,
    PackedBatch,
    TrainSettings,
    build_engine,
    resume,
    train,
    unit_attention,
)
from tests.conftest import make_tiny_llama

T = 96
SPANS = [[(0, 40), (40, 90)], [(0, 96)], [(0, 30), (30, 60), (60, 96)], [(0, 70)]]


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    # learnable structure: each unit repeats a short random motif
    ids = np.zeros((len(SPANS), T), np.int64)
    for i, spans in enumerate(SPANS):
        for a, e in spans:
            motif = rng.integers(1, 97, 6)
            ids[i, a:e] = np.resize(motif, e - a)
    return ids


def _loader(ids, frozen_logp=None):
    def load(idx):
        lp = fc = None
        if frozen_logp is not None:
            lp = torch.from_numpy(frozen_logp[0][idx])
            fc = torch.from_numpy(frozen_logp[1][idx])
        return PackedBatch(torch.from_numpy(ids[idx]), [SPANS[i] for i in idx], lp, fc)
    return load


def _run(settings, ids, frozen=None, ckpt=None, start=0, engine=None):
    engine = engine or build_engine(make_tiny_llama(seed=1), settings)
    if ckpt and start:
        start = resume(engine, ckpt)
    hist = train(engine, settings, InMemoryBatches(_loader(ids, frozen), len(ids)), ckpt, start)
    return engine, hist


@pytest.fixture(scope="module")
def frozen_scores():
    ids = _data()
    scorer = make_tiny_llama(seed=2, init_std=0.3)
    return short_context_logprobs(scorer, ids, SPANS, n=16, overlap=4)


@pytest.mark.parametrize("mode,frozen", [("uniform", True), ("dense", True), ("sparse", True),
                                         ("dense", False), ("sparse", False)])
def test_each_loss_mode_trains_a_tiny_llama_on_packed_data(mode, frozen, frozen_scores):
    settings = TrainSettings(mode=mode, frozen=frozen, n=16, steps=12, micro_batch=2,
                             grad_accum=2, lr=3e-3, warmup_steps=1, zero_stage=1,
                             block_size=37, kappa=0.4)
    _, hist = _run(settings, _data(), frozen_scores)
    first, last = hist[0].loss_unweighted, np.mean([h.loss_unweighted for h in hist[-3:]])
    assert last < first - 0.3, (mode, frozen, [h.loss_unweighted for h in hist])
    if mode == "sparse":
        assert 0.3 < hist[0].weight_nonzero < 0.5  # kappa 0.4 of the counted tokens
    if mode == "dense":
        assert hist[0].weight_mean == pytest.approx(1.0, abs=1e-4)  # normalised to N


def test_zero_stage_3_trains_too():
    settings = TrainSettings(steps=4, micro_batch=2, grad_accum=1, lr=3e-3, warmup_steps=0,
                             zero_stage=3)
    _, hist = _run(settings, _data())
    assert hist[-1].loss_unweighted < hist[0].loss_unweighted


def test_resume_from_a_checkpoint_continues_the_same_loss_curve(tmp_path):
    settings = TrainSettings(mode="sparse", frozen=False, n=16, steps=6, micro_batch=2,
                             grad_accum=1, lr=3e-3, warmup_steps=2, zero_stage=2,
                             checkpoint_every=3)
    _, full = _run(settings, _data(), ckpt=str(tmp_path / "a"))
    first = TrainSettings(**{**settings.__dict__, "steps": 3})
    _run(first, _data(), ckpt=str(tmp_path / "b"))
    _, rest = _run(settings, _data(), ckpt=str(tmp_path / "b"), start=-1)
    assert [h.step for h in rest] == [3, 4, 5]
    np.testing.assert_allclose([h.loss_weighted for h in rest],
                               [h.loss_weighted for h in full[3:]], rtol=1e-5)


def test_attention_never_crosses_a_unit_boundary():
    model = make_tiny_llama(seed=3).eval()
    ids = torch.from_numpy(_data())[:1]
    spans = [SPANS[0]]
    mask, pos = unit_attention(spans, T)
    with torch.no_grad():
        a = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        changed = ids.clone()
        changed[0, :40] = (changed[0, :40] + 7) % 97  # rewrite the first unit
        b = model(input_ids=changed, attention_mask=mask, position_ids=pos).logits
        alone = model(input_ids=ids[:, 40:90]).logits
    torch.testing.assert_close(a[0, 40:90], b[0, 40:90])  # the second unit does not notice
    torch.testing.assert_close(a[0, 40:90], alone[0], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(a[0, :40], b[0, :40])


def test_the_unit_path_and_checkpointing_train_as_the_dense_mask_does(frozen_scores):
    curves = []
    for attention, checkpointing in (("dense_mask", False), ("auto", False), ("auto", True)):
        settings = TrainSettings(mode="sparse", frozen=True, steps=3, micro_batch=2,
                                 grad_accum=1, lr=3e-3, warmup_steps=0, zero_stage=0,
                                 attention=attention, gradient_checkpointing=checkpointing)
        engine, hist = _run(settings, _data(), frozen_scores)
        assert engine.module.config._attn_implementation == \
            ("sdpa" if attention == "dense_mask" else "unit_sdpa")
        curves.append([h.loss_weighted for h in hist])
        assert 0 < hist[0].scorable_fraction <= 1
    np.testing.assert_allclose(curves[1], curves[0], rtol=1e-5)
    np.testing.assert_allclose(curves[2], curves[1], rtol=1e-5)


def test_gradient_is_the_weighted_mean_of_the_step_however_it_is_split():
    """Two micro-batches of one sequence each, or one micro-batch of two: same update."""
    ids = _data()
    results = []
    for micro, accum in ((2, 1), (1, 2)):
        settings = TrainSettings(mode="uniform", steps=1, micro_batch=micro, grad_accum=accum,
                                 lr=1e-2, warmup_steps=0, max_grad_norm=0.0, zero_stage=0)
        engine, _ = _run(settings, ids[:2])
        results.append(torch.cat([p.detach().flatten() for p in engine.module.parameters()]))
    torch.testing.assert_close(results[0], results[1], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("zero_stage", [2, 3])
def test_zero_accumulates_the_micro_batches_of_a_step(zero_stage):
    """The body runs outside engine.forward, where ZeRO counts micro-batches: without that
    count ZeRO-3 kept only the last micro-batch's gradient (step 2's loss differed by 3%)."""
    ids = _data()
    curves = []
    for micro, accum in ((2, 1), (1, 2)):
        settings = TrainSettings(mode="uniform", steps=3, micro_batch=micro, grad_accum=accum,
                                 lr=1e-2, warmup_steps=0, zero_stage=zero_stage)
        _, hist = _run(settings, ids[:2])
        curves.append([h.loss_unweighted for h in hist])
    np.testing.assert_allclose(curves[1], curves[0], rtol=1e-5)
