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


def test_packed_units_start_with_the_bos_the_scorer_used():
    """Training sees each unit as the scorer saw each scored sequence: [BOS; chunks; D]."""
    from lakehouse.packing import pack_baseline, pack_entropylong, spans_exact

    roots = {"r1": [7, 8, 9], "r2": [10, 11]}
    chunks = {"c1": [20, 21], "c2": [22]}
    with_bos = pack_entropylong({"r1": ["c1", "c2"], "r2": ["c1"]}, sorted(roots), roots,
                                chunks, 16, 0, seed=1, bos=BOS)
    plain = pack_entropylong({"r1": ["c1", "c2"], "r2": ["c1"]}, sorted(roots), roots,
                             chunks, 16, 0, seed=1)
    assert with_bos.stats["tokens"] == plain.stats["tokens"] + 2  # one BOS per unit
    seqs, man = with_bos.sequences.to_pylist(), with_bos.manifest.to_pylist()
    for m in man:
        ids = seqs[m["seq_id"]]["input_ids"]
        unit = ids[m["token_start"]:m["token_end"]]
        assert unit[0] == BOS and BOS not in unit[1:]
        assert unit[m["root_start"] - m["token_start"]:] == roots[m["root_doc_id"]]
    assert spans_exact(with_bos.sequences, 16)
    base = pack_baseline(list(roots), list(roots.values()), 7, 16, 0, seed=1, bos=BOS)
    for s in base.sequences.to_pylist():
        assert all(s["input_ids"][a] == BOS for a, _ in s["indices"])


def test_short_context_windows_inside_a_unit_start_with_the_bos(tiny_llama):
    """Windows past a unit's first n tokens get the BOS in front, as scoring's windows of a
    long document do; the unit's own first window is led by the BOS packing put there."""
    from models.short_context import short_context_logprobs

    n, overlap = 16, 4
    ids = np.concatenate([[BOS], _seq(60, 4)])[None]
    logp, full = short_context_logprobs(tiny_llama, ids, [[(0, 61)]], n, overlap,
                                        bos_token_id=BOS)
    plain, _ = short_context_logprobs(tiny_llama, ids, [[(0, 61)]], n, overlap)
    for w in plan_windows([61], n, overlap):
        if w.start == 0:
            continue
        ref = naive_scores(tiny_llama, ids[0, w.start:w.end], bos_token_id=BOS)
        np.testing.assert_allclose(-logp[0, w.score_from:w.end],
                                   ref.nll[w.score_from - w.start:], atol=1e-4)
    scored = np.isfinite(logp[0])
    assert scored.sum() > 30 and not np.allclose(logp[0, scored], plain[0, scored])
    first, _ = short_context_logprobs(tiny_llama, ids, [[(0, 61)]], n, overlap,
                                      first_window=True, bos_token_id=BOS)
    ref = naive_scores(tiny_llama, ids[0, :n])  # the data's own BOS leads, none added
    np.testing.assert_allclose(-first[0, 1:n], ref.nll[1:n], atol=1e-4)
