"""BOS handling: with a BOS id every forward input starts with it, position 0 is scored, and
scoring, position scoring and the naive reference agree; without one nothing changes."""

from __future__ import annotations

import numpy as np
import pytest

from models.scoring import (
    ScoringConfig,
    naive_scores,
    plan_windows,
    resolve_bos,
    score_positions,
    score_sequences,
)

BOS = 5


def _seq(n, seed=0):
    return np.random.default_rng(seed).integers(6, 97, n).astype(np.int32)


def test_with_bos_position_zero_is_scored_and_matches_the_naive_reference(tiny_llama):
    seq = _seq(50)
    (got,) = score_sequences(tiny_llama, [seq], ScoringConfig(bos_token_id=BOS))
    ref = naive_scores(tiny_llama, seq, bos_token_id=BOS)
    assert np.isfinite(got.entropy).all()
    np.testing.assert_allclose(got.entropy, ref.entropy, atol=1e-4)
    np.testing.assert_allclose(got.nll, ref.nll, atol=1e-4)
    (plain,) = score_sequences(tiny_llama, [seq], ScoringConfig())
    assert np.isnan(plain.entropy[0])
    assert not np.allclose(plain.entropy[1:], got.entropy[1:])  # the BOS is context


def test_every_window_of_a_long_sequence_starts_with_the_bos(tiny_llama):
    seq = _seq(100, 1)
    cfg = ScoringConfig(window=40, overlap=10, bos_token_id=BOS)
    (got,) = score_sequences(tiny_llama, [seq], cfg)
    windows = plan_windows([100], 39, 10, first=0)  # one slot of the window holds the BOS
    assert len(windows) > 2 and windows[0].score_from == 0
    for w in windows:
        ref = naive_scores(tiny_llama, seq[w.start:w.end], bos_token_id=BOS)
        np.testing.assert_allclose(got.entropy[w.score_from:w.end],
                                   ref.entropy[w.score_from - w.start:], atol=1e-4)


def test_position_scoring_with_bos_equals_full_scoring(tiny_llama):
    seqs = [_seq(30, 2), _seq(64, 3)]
    pos = [np.array([0, 7, 29]), np.array([1, 63])]
    cfg = ScoringConfig(window=65, token_budget=256, bos_token_id=BOS)
    got = score_positions(tiny_llama, seqs, pos, cfg)
    full = score_sequences(tiny_llama, seqs, cfg)
    for g, f, p in zip(got, full, pos, strict=True):
        np.testing.assert_allclose(g.entropy, f.entropy[p], atol=1e-4)
        np.testing.assert_allclose(g.nll, f.nll[p], atol=1e-4)
    with pytest.raises(ValueError, match="window"):  # 65 tokens + BOS do not fit 65
        score_positions(tiny_llama, [_seq(65)], [np.array([3])], cfg)


def _tokenizer(adds_bos: bool):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({"<s>": 0, "a": 1, "[UNK]": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if adds_bos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A",
                                                           special_tokens=[("<s>", 0)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>")


def test_resolve_bos_follows_what_the_tokenizer_does_unless_told():
    assert resolve_bos(_tokenizer(True), "auto") == 0
    assert resolve_bos(_tokenizer(False), "auto") is None
    assert resolve_bos(_tokenizer(False), "always") == 0
    assert resolve_bos(_tokenizer(True), "never") is None
    with pytest.raises(ValueError):
        resolve_bos(_tokenizer(True), "sometimes")
