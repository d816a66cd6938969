"""dI at distance: the anchor re-scored on its packed context, with and without the chunk."""

from __future__ import annotations

import numpy as np
import pytest

from models.distance_check import PackedDependency, context_start, distance_check, sample
from models.scoring import ScoringConfig, naive_scores
from tests.conftest import make_tiny_llama


def _direct(model, ids: np.ndarray, bos: int | None) -> float:
    """Entropy at the last token of ``ids``, the obvious way (full logits)."""
    return float(naive_scores(model, ids, bos).entropy[-1])


@pytest.mark.parametrize("bos", [None, 5])
def test_entropies_with_and_without_the_chunk_equal_a_direct_computation(bos):
    model = make_tiny_llama(max_positions=128, init_std=0.3)
    rng = np.random.default_rng(0)
    row = rng.integers(6, 97, 300)
    if bos is not None:
        row[100] = bos  # a unit starting with the BOS at 100
    lead = int(bos is not None)
    deps = [PackedDependency(0, 100, 110, 120, 160, 140),  # two anchors of one chunk
            PackedDependency(0, 100, 110, 120, 150, 140),  # (their root starts at 140)
            PackedDependency(0, 100, 125, 135, 160, 140),  # another chunk, same context
            PackedDependency(0, 100, 105, 120, 290),  # chunk start cut off by the window
            # a one-token chunk right before the anchor: without it only the BOS is left
            PackedDependency(0, 100 + lead, 100 + lead, 101 + lead, 101 + lead)]
    config = ScoringConfig(window=64, bos_token_id=bos)
    out = distance_check(model, [row], deps, config)
    assert out["status"] == ["ok", "ok", "ok", "beyond_window",
                             "ok" if bos is not None else "no_context"]
    for i, d in enumerate(deps):
        if out["status"][i] != "ok":
            assert np.isnan(out["h_with"][i]) and np.isnan(out["delta_i"][i])
            continue
        start = max(d.span_start + int(row[d.span_start] == bos),
                    d.anchor + 1 - (64 - lead))
        assert out["context_start"][i] == start == 100 + lead
        with_chunk = row[start:d.anchor + 1]
        without = np.concatenate([row[start:d.chunk_start], row[d.chunk_end:d.anchor + 1]])
        np.testing.assert_allclose(out["h_with"][i], _direct(model, with_chunk, bos),
                                   rtol=1e-4)
        np.testing.assert_allclose(out["h_without"][i], _direct(model, without, bos),
                                   rtol=1e-4)
        h, hp = out["h_without"][i], out["h_with"][i]
        np.testing.assert_allclose(out["delta_i"][i], (h - hp) / h, rtol=1e-4)
        if d.root_start < 0:
            assert np.isnan(out["h_moved"][i])
            continue
        moved = np.concatenate([row[start:d.chunk_start], row[d.chunk_end:d.root_start],
                                row[d.chunk_start:d.chunk_end], row[d.root_start:d.anchor + 1]])
        np.testing.assert_allclose(out["h_moved"][i], _direct(model, moved, bos), rtol=1e-4)
        np.testing.assert_allclose(out["delta_i_moved"][i], (h - out["h_moved"][i]) / h,
                                   rtol=1e-4)
    # one pass with the chunks for the shared context, one without and one with it moved
    # for each chunk
    assert out["tokens"] == (60 + 50 + 50 + 1 + 60 + 60 if bos is not None
                             else 61 + 51 + 51 + 61 + 61)


def test_context_start_and_sample():
    d = PackedDependency(0, 0, 50, 60, 100)
    assert context_start(d, 51, 0) == 50 and context_start(d, 50, 0) is None
    assert context_start(d, 1000, 1) == 1
    eligible = np.array([True, False, True, True, False, True])
    assert sample(eligible, 10, 0).tolist() == [0, 2, 3, 5]
    picked = sample(eligible, 2, 0)
    assert len(picked) == 2 and set(picked) <= {0, 2, 3, 5}
    assert sample(eligible, 2, 0).tolist() == picked.tolist()


@pytest.mark.slow  # SmolLM2-135M, two short passes
def test_smollm2_still_uses_a_planted_fact_a_few_hundred_tokens_back(smollm2):
    model, tok = smollm2
    chunk = tok(" The access code for the north vault is 7391.")["input_ids"]
    filler = tok(" The weather was mild and the market opened late, as it often did in "
                 "spring. People walked slowly along the river and talked about nothing "
                 "in particular." * 6)["input_ids"]
    root = tok(" Later that day the guard checked the north vault. Its access code is 73")[
        "input_ids"]
    row = np.asarray(chunk + filler + root, np.int64)
    anchor = len(row) - 1  # the code's second half
    dep = PackedDependency(0, 0, 0, len(chunk), anchor)
    out = distance_check(model, [row], [dep], ScoringConfig(window=2048))
    assert out["status"] == ["ok"] and anchor - len(chunk) > 100
    assert out["h_with"][0] < out["h_without"][0] and out["delta_i"][0] > 0.2, out
