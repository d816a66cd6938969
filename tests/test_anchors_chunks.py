"""Threshold and anchor math, query windows, and chunking, on hand-made arrays."""

from __future__ import annotations

import re

import numpy as np
import pytest

from lakehouse.anchors import adaptive_threshold, query_span, select_anchors, span_text
from lakehouse.chunking import chunk_spans, sentence_ends

NAN = float("nan")


def test_threshold_is_mean_plus_alpha_std_ignoring_position_zero():
    h = np.array([NAN, 1.0, 2.0, 3.0, 4.0, 10.0], np.float32)
    th = adaptive_threshold(h, alpha=2.0)
    vals = np.array([1, 2, 3, 4, 10], np.float64)
    assert th.mean == pytest.approx(vals.mean())
    assert th.std == pytest.approx(vals.std())  # population std
    assert th.tau == pytest.approx(vals.mean() + 2 * vals.std())


def test_anchors_are_positions_strictly_above_tau():
    h = np.array([NAN, 1.0, 5.0, 2.0, 5.0, 7.0], np.float32)
    assert select_anchors(h, 5.0).tolist() == [5]
    assert select_anchors(h, 4.9).tolist() == [2, 4, 5]
    assert select_anchors(h, float("nan")).tolist() == []


def test_cap_keeps_the_highest_entropy_anchors_in_position_order():
    h = np.array([NAN, 9.0, 3.0, 8.0, 9.0, 7.0], np.float32)
    assert select_anchors(h, 2.0, max_anchors=3).tolist() == [1, 3, 4]
    assert select_anchors(h, 2.0, max_anchors=1).tolist() == [1]  # tie -> earlier position


def test_a_flat_profile_has_no_anchors():
    h = np.array([NAN] + [2.0] * 20, np.float32)
    th = adaptive_threshold(h, 2.0)
    assert th.std == 0 and select_anchors(h, th.tau).size == 0


@pytest.mark.parametrize("t,n,w,mode,expected", [
    (20, 100, 16, "symmetric", (4, 36)), (3, 100, 16, "symmetric", (0, 19)),
    (95, 100, 16, "symmetric", (79, 100)), (40, 100, 16, "prefix", (8, 40)),
    (5, 100, 16, "prefix", (0, 5)),
])
def test_query_spans(t, n, w, mode, expected):
    assert query_span(t, n, w, mode) == expected


def test_symmetric_query_contains_the_anchor_token_and_prefix_does_not():
    text = "alpha beta gamma delta"
    starts, ends = np.array([0, 6, 11, 17]), np.array([5, 10, 16, 22])
    assert span_text(text, starts, ends, *query_span(2, 4, 1, "symmetric")) == "beta gamma"
    assert span_text(text, starts, ends, *query_span(2, 4, 1, "prefix")) == "alpha beta"
    with pytest.raises(ValueError):
        query_span(2, 4, 1, "suffix")


def test_sentence_ends_and_chunks_cut_there():
    text = "One two. Three four! Five six seven? Eight"
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    ends = np.array([b for _, b in words])
    is_end = sentence_ends(text, ends)
    assert is_end.tolist() == [False, True, False, True, False, False, True, False]
    assert chunk_spans(len(words), is_end, size=4, min_size=1) == [(0, 4), (4, 8)]
    assert chunk_spans(len(words), is_end, size=3, min_size=1) == [(0, 2), (2, 4), (4, 7),
                                                                     (7, 8)]


@pytest.mark.parametrize("n,size", [(0, 4), (1, 4), (10, 3), (1000, 256), (257, 256)])
def test_chunks_cover_every_token_once_within_size(n, size):
    rng = np.random.default_rng(n)
    spans = chunk_spans(n, rng.random(n) < 0.1, size)
    covered = [i for a, b in spans for i in range(a, b)]
    assert covered == list(range(n))
    assert all(0 < b - a <= size for a, b in spans)


# --- the anchors stage: rules, recurring text, the table -------------------------------
def test_words_group_sub_word_tokens_and_split_at_spaces_and_punctuation():
    from lakehouse.anchors import word_ids

    text = "Dr Braentenne, code E41-KRX7."
    pieces = ["Dr", " Bra", "ent", "enne", ",", " code", " E", "41", "-", "KR", "X7", "."]
    starts, ends, pos = [], [], 0
    for p in pieces:
        starts.append(pos)
        pos += len(p)
        ends.append(pos)
    assert "".join(pieces) == text
    assert word_ids(text, np.array(starts), np.array(ends)).tolist() == [
        0, 1, 1, 1, 2, 3, 4, 4, 5, 6, 6, 7]


def test_surprise_rule_scores_words_by_summed_nll_and_anchors_their_top_token():
    from lakehouse.anchors import surprise_anchors

    nll = np.array([NAN, 1, 1, 6, 5, 4, 1, 1, 1, 1, 1, 1], np.float64)
    words = np.array([0, 1, 2, 3, 3, 3, 4, 5, 6, 7, 8, 9])  # word 3: one name, 3 tokens
    pos, scores, tau = surprise_anchors(nll, words, alpha=2.0)
    sums = np.array([0, 1, 1, 15, 1, 1, 1, 1, 1, 1], np.float64)[1:]  # word 0 unscored
    assert tau == pytest.approx(sums.mean() + 2 * sums.std())
    assert pos.tolist() == [3] and scores.tolist() == [15.0]
    # no single token of the name beats an entropy-style per-token threshold at alpha 2
    per_token = nll[1:]
    assert (per_token > per_token.mean() + 2 * per_token.std()).sum() == 1  # only the 6


def test_a_long_random_string_is_not_an_anchor_for_its_length_alone():
    """A hash costs a few nats on each of its many tokens; capped at its 4 most surprising
    tokens (anchors.word_tokens) it scores like a short word, and the name it sits beside
    (a few very surprising sub-words) stays the anchor."""
    from lakehouse.anchors import AnchorSettings, surprise_anchors, word_scores

    name = [9.0, 6.0]  # two sub-words
    hashed = [3.5] * 16  # 16 tokens of hex
    nll = np.array([NAN] + [1.0] * 20 + name + [1.0] * 5 + hashed + [1.0] * 20, np.float64)
    words = np.concatenate([np.arange(21), [21, 21], np.arange(22, 27), [27] * 16,
                            np.arange(28, 48)])
    uncapped = word_scores(nll, words)
    assert uncapped[27] == pytest.approx(56.0) and uncapped[21] == pytest.approx(15.0)
    pos, _, _ = surprise_anchors(nll, words, alpha=2.0)
    assert words[pos].tolist() == [27]  # without the cap the hash is the only anchor
    top = AnchorSettings().word_tokens
    assert top == 4
    capped = word_scores(nll, words, top)
    assert capped[27] == pytest.approx(14.0) and capped[21] == pytest.approx(15.0)
    pos, _, _ = surprise_anchors(nll, words, alpha=2.0, top=top)
    assert words[pos].tolist() == [21, 27] and pos[0] == 21  # the name's first sub-word


def _stage_inputs():
    import pyarrow as pa

    text = "Home > News. Marta Quorvath opened it. Home > News."
    toks = ["Home", " >", " News", ".", " Marta", " Quor", "vath", " opened", " it", ".",
            " Home", " >", " News", "."]
    starts, ends, pos = [], [], 0
    for t in toks:
        starts.append(pos)
        pos += len(t)
        ends.append(pos)
    assert "".join(toks) == text
    n = len(toks)
    h = np.array([NAN, 1, 1, 1, 2, 9, 2, 1, 1, 1, 1, 1, 9, 1], np.float32)
    g = np.array([NAN, 1, 1, 1, 9, 9, 3, 1, 1, 1, 1, 1, 13, 1], np.float32)
    f = h[1:].astype(np.float64)
    profiles = pa.table({"doc_id": ["d"], "entropy": [h.tolist()], "nll": [g.tolist()],
                         "mean": [float(f.mean())], "std": [float(f.std())]})
    tokens = pa.table({"doc_id": ["d"], "char_start": [starts], "char_end": [ends]})
    recurring = np.zeros(n, bool)
    recurring[[0, 1, 2, 3, 10, 11, 12, 13]] = True  # "Home > News." recurs elsewhere
    return profiles, tokens, {"d": text}, {"d": recurring}


def test_anchor_table_takes_the_name_and_skips_recurring_text():
    from lakehouse.anchors import AnchorSettings, anchor_table
    from lakehouse.tables import ANCHORS

    profiles, tokens, texts, recurring = _stage_inputs()
    table, stats = anchor_table(profiles, tokens, texts, recurring,
                                AnchorSettings(alpha=1.5, query_window=2))
    assert table.schema == ANCHORS
    rows = table.to_pylist()
    # "Quorvath" (9 + 3 nats) is the surprising word, anchored at its first token; "Marta"
    # (9) stays below tau; the recurring "News" (13) is a candidate that is skipped
    assert [r["position"] for r in rows] == [5]
    assert rows[0]["rule"] == "surprise" and rows[0]["query"] == ". Marta Quorvath"
    assert rows[0]["score"] == pytest.approx(12.0)
    assert stats["skipped_recurring"] == 1
    assert stats["anchors_per_1k_tokens"] == pytest.approx(1000 / 13)
    # the paper's rule, for comparison: by entropy, and without the recurring filter it
    # anchors the recurring token as well
    t2, s2 = anchor_table(profiles, tokens, texts, None,
                          AnchorSettings(rule="entropy", alpha=1.5, skip_recurring=True))
    assert sorted(t2["position"].to_pylist()) == [5, 12] and s2["skipped_recurring"] == 0
    t3, _ = anchor_table(profiles, tokens, texts, recurring,
                         AnchorSettings(rule="entropy", alpha=1.5))
    assert t3["position"].to_pylist() == [5]
    t4, _ = anchor_table(profiles, tokens, texts, None,
                         AnchorSettings(alpha=1.5, max_per_doc=1))
    assert t4["position"].to_pylist() == [12]  # the highest-scoring word only
