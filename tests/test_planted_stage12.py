"""Stages 1-2 on the planted corpus with the real SmolLM2 scorer and MiniLM embedder."""

from __future__ import annotations

import pytest

from bench.planted import measure, write_config


@pytest.mark.slow
def test_planted_dependencies_are_retrievable_and_anchor_rates_are_reported(tmp_path):
    m = measure(write_config(tmp_path))
    e = m["enrichment"]
    print(f"\nplanted anchors at alpha={m['alpha']}: planted-token anchor rate "
          f"{e.planted_anchor_rate:.4f} vs other tokens {e.other_anchor_rate:.4f} "
          f"(ratio {e.ratio:.2f}); spans with an anchor {e.spans_with_anchor}/{e.spans}; "
          f"planted anchors with source among K: {m['planted_anchor_source_found']}/"
          f"{m['planted_anchors']}; oracle recall@{m['k']}: {m['oracle_found']}/{m['spans']}")
    # Every planted fact maps onto root tokens, and the anchor statistics cover every root.
    assert m["spans"] == 12 * 4
    assert e.planted_tokens > 0 and e.other_tokens > 5 * e.planted_tokens
    assert 0 < e.other_anchor_rate < 0.1  # alpha = 2 keeps a few percent of tokens
    # The roots are written so that only what their source explains stays uncertain: the
    # planted tokens are anchors several times as often as the rest (3.0x measured).
    assert e.ratio >= 2 and e.spans_with_anchor >= e.spans // 3
    # Retrieval from a planted position finds the true source for most spans, against 12
    # distractors on the same topics and a pool of real prose.
    assert m["oracle_found"] / m["spans"] >= 0.8
