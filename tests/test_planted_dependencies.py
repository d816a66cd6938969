"""Stages 1-4 on `planted` with SmolLM2 and MiniLM: verified dependencies against the truth."""

from __future__ import annotations

import pytest

from bench.planted import measure_dependencies, write_config


@pytest.mark.slow  # about 5 minutes on 2 CPU cores: 12 roots, ~2,200 (anchor, chunk) rows
def test_verified_dependencies_match_the_planted_ground_truth(tmp_path):
    q = measure_dependencies(write_config(tmp_path))
    for (rule, level), row in sorted(q.items()):
        print(f"\n{level:4} {rule:16} precision {row['precision']:.3f} "
              f"({row['true_kept']}/{row['kept']}) recall {row['recall']:.3f} "
              f"({row['truth_found']}/{row['truth']})", end="")
    span_v, span_off = q[("verified", "span")], q[("top1_unverified", "span")]
    pair_v, pair_off = q[("verified", "pair")], q[("top1_unverified", "pair")]
    # At the positions the ground truth labels, what verification keeps is the true source.
    assert span_v["precision"] >= 0.8
    # Nearly every root keeps a chunk of its true source.
    assert pair_v["recall"] >= 0.6
    # Verification beats keeping the top-ranked candidate unverified, at both levels.
    assert span_v["precision"] > span_off["precision"]
    assert pair_v["precision"] > pair_off["precision"]
    assert span_v["recall"] >= span_off["recall"]
    # Not asserted, reported: pair-level precision (~0.2) counts every kept same-topic
    # distractor as false although it does cut entropy at topic words, and span-level
    # recall (~0.45) is bounded by anchor selection (about half the planted spans hold an
    # anchor at alpha = 2). Both figures are in the closing note of issue 5.
