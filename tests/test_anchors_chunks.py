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
