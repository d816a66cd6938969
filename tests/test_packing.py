"""Packing invariants: every token once, exact lengths, correct spans, same bytes twice."""

from __future__ import annotations

import numpy as np
import pytest

from lakehouse.packing import assemble, best_fit_decreasing, build_unit, fit_unit


def _units(n, seed=0, max_len=300):
    rng = np.random.default_rng(seed)
    units = []
    for i in range(n):
        chunks = [(f"c{i}-{j}", rng.integers(1, 1000, rng.integers(5, 60)))
                  for j in range(rng.integers(0, 4))]
        units.append(build_unit(f"d{i}", rng.integers(1, 1000, rng.integers(10, max_len)),
                                chunks, seed=7))
    return units


def test_unit_is_shuffled_chunks_then_root_and_order_independent():
    chunks = [(f"c{j}", np.full(3, j)) for j in range(6)]
    u = build_unit("root", np.array([9, 9]), chunks, seed=1)
    assert u.segment_ids[-1] == "root" and sorted(u.segment_ids[:-1]) == [c for c, _ in chunks]
    assert build_unit("root", np.array([9, 9]), chunks[::-1], seed=1).segment_ids == \
        u.segment_ids
    assert build_unit("root", np.array([9, 9]), chunks, seed=2).segment_ids != u.segment_ids


def test_packing_keeps_every_token_once_with_exact_lengths_and_spans():
    units = _units(200)
    target = 1024
    bins = best_fit_decreasing([u.length for u in units], target)
    packed = assemble(units, bins, target, pad_id=0)
    assert packed.input_ids.shape == (len(bins), target)
    seen = sorted(i for b in bins for i in b)
    assert seen == list(range(len(units)))
    by_id = {u.unit_id: u for u in units}
    for row, (spans, ids) in enumerate(zip(packed.indices, packed.unit_ids, strict=True)):
        end = 0
        for (a, b), uid in zip(spans, ids, strict=True):
            assert a == end  # spans tile the sequence up to the padding
            np.testing.assert_array_equal(packed.input_ids[row, a:b],
                                          np.concatenate(by_id[uid].segments))
            end = b
        assert packed.n_pad[row] == target - end
        assert np.all(packed.input_ids[row, end:] == 0)
    total = sum(u.length for u in units)
    assert total + packed.n_pad.sum() == packed.input_ids.size
    assert total / packed.input_ids.size > 0.95  # best-fit decreasing packs tightly


def test_packing_is_deterministic():
    a = _units(50, seed=3)
    b = _units(50, seed=3)
    pa_ = assemble(a, best_fit_decreasing([u.length for u in a], 512), 512, 0)
    pb = assemble(b, best_fit_decreasing([u.length for u in b], 512), 512, 0)
    assert pa_.input_ids.tobytes() == pb.input_ids.tobytes() and pa_.indices == pb.indices


def test_oversize_units_lose_leading_chunks_or_are_rejected():
    u = build_unit("r", np.ones(50), [("a", np.ones(40)), ("b", np.ones(30))], seed=0)
    lengths = dict(zip(u.segment_ids, (len(s) for s in u.segments), strict=True))
    for target in (85, 75, 120):
        fitted = fit_unit(u, target)
        # the longest suffix of the shuffled order (always ending with the root) that fits
        k = next(i for i in range(3) if sum(lengths[x] for x in u.segment_ids[i:]) <= target)
        assert fitted.segment_ids == u.segment_ids[k:] and fitted.length <= target
    assert fit_unit(u, 200).segment_ids == u.segment_ids
    assert fit_unit(build_unit("r", np.ones(90), [], 0), 85) is None
    with pytest.raises(ValueError, match="capacity"):
        best_fit_decreasing([10, 90], 85)
