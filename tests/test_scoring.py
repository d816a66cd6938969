"""The scoring kernel equals the naive full-logits computation."""

from __future__ import annotations

import numpy as np
import pytest

from models.scoring import (
    ScoringConfig,
    Window,
    batches_by_budget,
    naive_scores,
    plan_windows,
    score_sequences,
)


def _docs(lengths, vocab=97, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, vocab, n).astype(np.int32) for n in lengths]


@pytest.mark.parametrize("block_size", [1, 7, 64, 4096])
def test_kernel_matches_naive_entropy_and_nll_with_padded_batches(tiny_llama, block_size):
    docs = _docs([50, 3, 120, 17, 2, 88])
    got = score_sequences(tiny_llama, docs, ScoringConfig(block_size=block_size,
                                                          token_budget=300))
    for doc, scores in zip(docs, got, strict=True):
        ref = naive_scores(tiny_llama, doc)
        assert np.isnan(scores.entropy[0]) and np.isnan(scores.nll[0])
        np.testing.assert_allclose(scores.entropy[1:], ref.entropy[1:], atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(scores.nll[1:], ref.nll[1:], atol=1e-4, rtol=1e-4)


def test_entropy_is_within_zero_and_log_vocab(tiny_llama):
    (scores,) = score_sequences(tiny_llama, _docs([64]))
    assert np.all(scores.entropy[1:] >= 0) and np.all(scores.entropy[1:] <= np.log(97) + 1e-5)


def test_windowed_scoring_equals_full_context_where_the_document_fits(tiny_llama):
    docs = _docs([100])
    full = score_sequences(tiny_llama, docs, ScoringConfig(window=256))[0]
    fits = score_sequences(tiny_llama, docs, ScoringConfig(window=100, overlap=20))[0]
    np.testing.assert_allclose(fits.entropy[1:], full.entropy[1:], atol=1e-5)


def test_long_documents_are_scored_in_windows_with_the_overlap_as_context(tiny_llama):
    (doc,) = _docs([230])
    cfg = ScoringConfig(window=64, overlap=16, token_budget=128)
    (got,) = score_sequences(tiny_llama, [doc], cfg)
    assert np.all(np.isfinite(got.entropy[1:]))
    for w in plan_windows([230], 64, 16):
        ref = naive_scores(tiny_llama, doc[w.start:w.end])
        lo = w.score_from - w.start
        np.testing.assert_allclose(got.entropy[w.score_from:w.end], ref.entropy[lo:],
                                   atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(got.nll[w.score_from:w.end], ref.nll[lo:], atol=1e-4,
                                   rtol=1e-4)


@pytest.mark.parametrize("n,window,overlap", [(10, 64, 16), (64, 64, 16), (65, 64, 16),
                                              (1000, 64, 16), (300, 100, 99), (7, 2, 1)])
def test_window_plan_scores_every_position_once_with_enough_context(n, window, overlap):
    wins = plan_windows([n], window, overlap)
    scored = np.zeros(n, int)
    for w in wins:
        assert w.end - w.start <= window
        assert w.score_from == 1 if w.start == 0 else w.score_from - w.start >= overlap
        scored[w.score_from:w.end] += 1
    assert scored[0] == 0 and np.all(scored[1:] == 1)


def test_batches_respect_the_token_budget_and_keep_every_window():
    wins = [Window(i, 0, n, 1) for i, n in enumerate([5, 90, 30, 30, 12, 64, 1])]
    batches = list(batches_by_budget(wins, token_budget=100))
    assert sorted(w.seq for b in batches for w in b) == list(range(7))
    for b in batches:
        assert len(b) == 1 or len(b) * (b[0].end - b[0].start) <= 100
        assert [w.end for w in b] == sorted((w.end for w in b), reverse=True)


def test_bad_window_settings_are_rejected():
    with pytest.raises(ValueError, match="overlap"):
        plan_windows([10], 8, 8)


# --- packed batches: one row per batch, no padding, attention inside each window -------------
@pytest.mark.parametrize("bos", [None, 5])
def test_packed_batches_equal_padded_ones(bos):
    from models.scoring import packable, score_positions
    from tests.conftest import make_tiny_llama

    model = make_tiny_llama(init_std=0.3)
    assert packable(model) and model.config._attn_implementation == "unit_sdpa"
    docs = _docs([50, 3, 120, 17, 2, 300], seed=4)
    kw = {"window": 100, "overlap": 20, "token_budget": 200, "bos_token_id": bos}
    packed = score_sequences(model, docs, ScoringConfig(pack=True, **kw))
    padded = score_sequences(model, docs, ScoringConfig(pack=False, **kw))
    for a, b in zip(packed, padded, strict=True):
        np.testing.assert_allclose(a.entropy, b.entropy, atol=1e-5)
        np.testing.assert_allclose(a.nll, b.nll, atol=1e-5)
    ref = naive_scores(model, docs[0], bos_token_id=bos)
    np.testing.assert_allclose(packed[0].entropy[1:], ref.entropy[1:], atol=1e-4)
    pos = [np.array([1, 30, 49]), np.array([2]), np.array([5, 119])]
    kw["window"] = 130
    for a, b in zip(score_positions(model, docs[:3], pos, ScoringConfig(pack=True, **kw)),
                    score_positions(model, docs[:3], pos, ScoringConfig(pack=False, **kw)),
                    strict=True):
        np.testing.assert_allclose(a.entropy, b.entropy, atol=1e-5)
        np.testing.assert_allclose(a.nll, b.nll, atol=1e-5)


def test_packed_batches_hold_the_token_budget_without_padding():
    from models.scoring import batches_packed

    wins = [Window(i, 0, n, 1) for i, n in enumerate([5, 90, 30, 30, 12, 64, 1, 150])]
    batches = list(batches_packed(wins, token_budget=100, lead=1))
    assert sorted(w.seq for b in batches for w in b) == list(range(8))
    for b in batches:
        assert len(b) == 1 or sum(w.end - w.start + 1 for w in b) <= 100
