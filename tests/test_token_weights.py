"""Token-weight math against the paper's equations 5-8 by hand; the chunked weighted loss
against autograd on full logits."""

from __future__ import annotations

import math

import pytest
import torch

from models.token_weights import (
    dense_weights,
    ignore_mask,
    scores,
    token_weights,
)
from models.weighted_loss import weighted_nll_sum

# log-probs of 5 tokens: short context (n) and long context (N)
SHORT = torch.tensor([[-2.0, -1.0, -3.0, -0.5, -4.0]])
LONG = torch.tensor([[-1.0, -1.0, -0.5, -2.0, -4.5]])
# w~ = log p(n) - log p(N) = -PMI (eq. 6)
W = [-1.0, 0.0, -2.5, 1.5, 0.5]


def test_score_variants_follow_the_definitions():
    ln2 = math.log(2)
    expect = {
        "abs": [abs(x) for x in W],
        "ppmi": [max(-x, 0) for x in W],          # PMI = -w~
        "npmi": [max(x, 0) for x in W],
        "sppmi": [max(-x - ln2, 0) for x in W],
        "snpmi": [max(x - ln2, 0) for x in W],
    }
    for variant, want in expect.items():
        got = scores(SHORT, LONG, variant, shift_k=2)
        torch.testing.assert_close(got, torch.tensor([want]), msg=variant)
    with pytest.raises(ValueError, match="k >= 2"):
        scores(SHORT, LONG, "sppmi", shift_k=1)
    with pytest.raises(ValueError, match="variant"):
        scores(SHORT, LONG, "pmi")


def test_dense_weights_normalise_to_n_then_interpolate():
    s = torch.tensor([[1.0, 0.0, 2.5, 1.5, 0.5]])
    valid = torch.tensor([[False, True, True, True, True]])  # position 0 never counts
    lam = 0.75
    n, total = 4, 0.0 + 2.5 + 1.5 + 0.5
    want = [0.0] + [lam + (1 - lam) * n * x / total for x in [0.0, 2.5, 1.5, 0.5]]
    got = dense_weights(s, valid, lam)
    torch.testing.assert_close(got, torch.tensor([want]))
    assert got.sum().item() == pytest.approx(n)  # interpolation keeps the sum at N
    # all-zero scores: nothing to prefer, uniform weights
    torch.testing.assert_close(dense_weights(torch.zeros(1, 5), valid, lam), valid.float())
    torch.testing.assert_close(dense_weights(s, valid, 1.0), valid.float())  # lambda 1


def test_sparse_weights_keep_the_top_fraction_ties_drawn_not_by_position():
    s = torch.tensor([[9.0, 3.0, 1.0, 3.0, 3.0, 0.0, 2.0, 3.0, 5.0, 4.0, 0.0]])
    valid = torch.ones_like(s, dtype=torch.bool)
    valid[0, 0] = False  # the 9.0 is ignored
    kappa = 0.4  # 10 valid tokens -> 4 kept: 5.0, 4.0 and two of the four 3.0s
    chosen = set()
    for seed in range(8):
        got = token_weights(s, valid, "sparse", kappa=kappa, seed=seed)
        kept = set(torch.nonzero(got[0]).flatten().tolist())
        assert {8, 9} <= kept and len(kept) == 4 and kept - {8, 9} <= {1, 3, 4, 7}
        assert got.sum().item() == pytest.approx(10)
        torch.testing.assert_close(got, token_weights(s, valid, "sparse", kappa=kappa,
                                                      seed=seed))  # seeded
        chosen.add(frozenset(kept - {8, 9}))
    assert len(chosen) > 1  # the tie among the 3.0s is drawn, not the earliest positions
    assert token_weights(s, torch.zeros_like(valid), "sparse", kappa=kappa).sum() == 0


def test_ignore_mask_drops_padding_and_each_units_first_label():
    ids = torch.zeros(2, 8, dtype=torch.long)
    mask = ignore_mask(ids, [[(0, 3), (3, 7)], [(0, 8)]])
    assert mask[0].tolist() == [False, True, True, False, True, True, True, False]
    assert mask[1].tolist() == [False] + [True] * 7
    torch.testing.assert_close(token_weights(torch.rand(2, 8), mask, "uniform"), mask.float())


def test_weights_carry_no_gradient():
    short = SHORT.clone().requires_grad_()
    s = scores(short, LONG)
    assert not s.requires_grad
    assert not dense_weights(s, torch.ones_like(s, dtype=torch.bool)).requires_grad


@pytest.mark.parametrize("block", [1, 3, 64])
def test_chunked_weighted_loss_and_gradient_equal_the_full_logits_reference(tiny_llama, block):
    torch.manual_seed(0)
    ids = torch.randint(0, 97, (2, 20))
    w = torch.rand(2, 20) * 2  # non-uniform weights
    w[:, 0] = 0

    def run(chunked: bool):
        tiny_llama.zero_grad()
        hidden = tiny_llama.model(input_ids=ids).last_hidden_state
        if chunked:
            loss, nll = weighted_nll_sum(hidden, tiny_llama.lm_head, ids, w, block)
        else:
            logp = torch.log_softmax(tiny_llama.lm_head(hidden).float(), -1)
            nll = -logp[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)
            loss = (w[:, 1:] * nll).sum()
        (loss / w[:, 1:].sum()).backward()
        grads = [p.grad.clone() for p in tiny_llama.parameters() if p.grad is not None]
        return loss.detach(), nll.detach(), grads

    loss, nll, grads = run(True)
    ref_loss, ref_nll, ref_grads = run(False)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(nll[:, 1:], ref_nll, rtol=1e-5, atol=1e-5)
    assert torch.isnan(nll[:, 0]).all()
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)


def test_short_context_scores_are_zero_in_the_first_window_and_match_a_direct_forward(
        tiny_llama):
    import numpy as np

    from models.scoring import plan_windows
    from models.short_context import short_context_logprobs

    rng = np.random.default_rng(0)
    ids = rng.integers(0, 97, (1, 110))
    spans = [[(0, 100), (100, 110)]]  # two units; the second is shorter than n
    n, overlap = 32, 8
    logp, full = short_context_logprobs(tiny_llama, ids, spans, n, overlap, token_budget=64,
                                        first_window=True)
    with torch.no_grad():
        long = torch.log_softmax(tiny_llama(torch.as_tensor(ids[:, :100])).logits.float(), -1)
    long_logp = long[0, :-1].gather(-1, torch.as_tensor(ids[0, 1:100])[:, None])[:, 0].numpy()
    # first window of a unit: the same context as the long model, score 0 by definition
    assert full[0, 1:32].all() and not full[0, 32:100].any() and full[0, 101:110].all()
    s = scores(torch.as_tensor(logp[:, 1:100]), torch.as_tensor(long_logp[None]))
    s = torch.where(torch.as_tensor(full[:, 1:100]), torch.zeros_like(s), s)
    assert (s[0, :31] == 0).all() and (s[0, 31:] > 0).any()
    np.testing.assert_allclose(logp[0, 1:32], long_logp[:31], atol=1e-4)
    # later tokens: a direct forward over their window alone, never the full unit
    windows = plan_windows([100], n, overlap)
    for t in range(32, 100):
        (w,) = [w for w in windows if w.score_from <= t < w.end]
        assert overlap <= t - w.start < n
        with torch.no_grad():
            direct = torch.log_softmax(
                tiny_llama(torch.as_tensor(ids[:, w.start:t])).logits.float()[0, -1], -1)
        assert logp[0, t] == pytest.approx(direct[ids[0, t]].item(), abs=1e-4)
    assert np.isnan(logp[0, [0, 100]]).all()  # each unit's first token predicts nothing
    # by default the first window, whose scores are 0 anyway, is not run
    skipped, full_skipped = short_context_logprobs(tiny_llama, ids, spans, n, overlap,
                                                   token_budget=64)
    assert (full_skipped == full).all()
    assert np.isnan(skipped[full]).all() and np.isnan(skipped[0, [0, 100]]).all()
    np.testing.assert_allclose(skipped[0, 32:100], logp[0, 32:100], atol=1e-5)
