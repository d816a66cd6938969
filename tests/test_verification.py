"""Grouped verification equals the one-pass-per-(anchor, chunk) reference; dI math."""

from __future__ import annotations

import numpy as np
import pytest

from lakehouse.dependencies import relative_gain, verified
from models.scoring import ScoringConfig, score_positions, score_sequences
from models.verification import Pair, group_pairs, verify_grouped, verify_naive


def _seqs(lengths, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 97, n).astype(np.int32) for n in lengths]


def test_score_positions_equals_full_scoring_at_those_positions(tiny_llama):
    seqs = _seqs([40, 90, 12], 0)
    pos = [np.array([1, 5, 39]), np.array([50, 89]), np.array([3])]
    got = score_positions(tiny_llama, seqs, pos, ScoringConfig(token_budget=100))
    full = score_sequences(tiny_llama, seqs)
    for g, f, p in zip(got, full, pos, strict=True):
        np.testing.assert_allclose(g.entropy, f.entropy[p], atol=1e-4)
        np.testing.assert_allclose(g.nll, f.nll[p], atol=1e-4)


def test_grouping_makes_one_pair_per_document_and_chunk():
    pairs = group_pairs([0, 0, 0, 1, 0], [7, 3, 7, 2, 3], [5, 5, 6, 5, 5])
    assert [(p.doc, p.chunk, p.positions.tolist()) for p in pairs] == [
        (0, 5, [3, 7]), (0, 6, [7]), (1, 5, [2])]
    assert group_pairs([], [], []) == []


def test_grouped_and_naive_verification_agree_with_fewer_tokens(tiny_llama):
    docs = _seqs([60, 45], 1)
    chunks = _seqs([20, 33, 8], 2)
    pairs = group_pairs([0, 0, 0, 1, 1, 0], [10, 40, 59, 44, 5, 40],
                        [0, 0, 0, 1, 2, 2])
    cfg = ScoringConfig(window=256, token_budget=200)
    grouped, t_grouped = verify_grouped(tiny_llama, docs, chunks, pairs, cfg)
    naive, t_naive = verify_naive(tiny_llama, docs, chunks, pairs, cfg)
    for g, n in zip(grouped, naive, strict=True):
        assert g.status == "ok"
        np.testing.assert_allclose(g.entropy, n.entropy, atol=1e-4)
        np.testing.assert_allclose(g.nll, n.nll, atol=1e-4)
    assert t_grouped < t_naive


def test_a_pair_longer_than_the_window_is_marked_not_scored(tiny_llama):
    docs, chunks = _seqs([50], 3), _seqs([40], 4)
    (res,), tokens = verify_grouped(tiny_llama, docs, chunks, [Pair(0, 0, np.array([30]))],
                                    ScoringConfig(window=64))
    assert res.status == "too_long" and np.isnan(res.entropy).all() and tokens == 0


def test_relative_gain_and_keep_rule_on_hand_made_values():
    h = np.array([4.0, 4.0, 2.0, 0.0, 3.0])
    h2 = np.array([1.0, 3.0, 2.5, 0.0, 0.0])
    di = relative_gain(h, h2)
    np.testing.assert_allclose(di[:3], [0.75, 0.25, -0.25])
    assert np.isnan(di[3]) and di[4] == pytest.approx(1.0)
    assert verified(di, 0.4).tolist() == [True, False, False, False, True]
    nll, nll2 = np.array([3.0, 3, 3, 3, 1.0]), np.array([0.5, 1, 1, 1, 2.0])
    assert verified(di, 0.4, nll, nll2, correctness_aware=True).tolist() == [
        True, False, False, False, False]
    assert verified(di, 0.8).tolist() == [False, False, False, False, True]


def test_pair_quality_counts_each_pair_once_and_judges_only_roots_with_truth():
    from lakehouse.planted_eval import pair_quality

    truth = [("r1", "s1"), ("r2", "s2"), ("r3", "s3")]
    kept = [("r1", "s1"), ("r1", "s1"), ("r1", "d1"), ("r2", "s2"), ("other", "x")]
    q = pair_quality(truth, kept)
    assert (q.truth, q.kept, q.true_kept, q.truth_found) == (3, 3, 2, 2)
    assert q.precision == 2 / 3 and q.recall == 2 / 3
    empty = pair_quality(truth, [])
    assert empty.recall == 0 and empty.precision != empty.precision  # NaN: nothing kept


def test_no_pairs_means_no_passes(tiny_llama):
    """A shard whose documents have no anchors, or anchors with no candidates, verifies to
    nothing: no forward pass, no rows."""
    assert verify_grouped(tiny_llama, _seqs([30], 5), _seqs([10], 6), [],
                          ScoringConfig()) == ([], 0)


def test_span_quality_judges_only_rows_inside_planted_spans():
    from lakehouse.planted_eval import PlantedSpan, span_quality

    spans = [PlantedSpan("r1", "s1", "person", 10, 13), PlantedSpan("r1", "s1", "place", 20, 22),
             PlantedSpan("r2", "s2", "code", 5, 8)]
    kept = [("r1", 11, "s1"), ("r1", 12, "s1"), ("r1", 12, "d1"),  # span 1: 2 true, 1 false
            ("r1", 30, "d1"),  # outside every span: unlabelled, not judged
            ("r2", 5, "d2")]  # span 3: false
    q = span_quality(spans, kept)
    assert (q.truth, q.kept, q.true_kept, q.truth_found) == (3, 4, 2, 1)
    assert q.precision == 0.5 and q.recall == 1 / 3


# --- the verification stage: every position, long documents -----------------------------
def _cands(rows):
    return {"doc_id": [r[0] for r in rows], "position": [r[1] for r in rows],
            "chunk_id": [r[2] for r in rows]}


def test_stage_rows_equal_the_naive_reference_and_all_positions_agree(tiny_llama):
    from models.verification import VerifySettings, verify_candidates

    docs = dict(zip(["a", "b"], _seqs([60, 45], 11), strict=True))
    chunks = dict(zip(["x", "y"], _seqs([20, 33], 12), strict=True))
    rows = [("a", 10, "x"), ("a", 40, "x"), ("b", 44, "y"), ("a", 59, "y")]
    cfg = ScoringConfig(window=256, token_budget=200)
    got = {m: verify_candidates(tiny_llama, cfg, _cands(rows), docs, chunks,
                                VerifySettings(positions=m)) for m in ("anchors", "all")}
    for i, (d, t, c) in enumerate(rows):
        seq = np.concatenate([chunks[c], docs[d][:t + 1]])
        (ref,) = score_positions(tiny_llama, [seq], [np.array([len(seq) - 1])], cfg)
        (alone,) = score_sequences(tiny_llama, [docs[d]], cfg)
        for v in got.values():
            assert v.rows["status"][i] == "ok" and v.rows["context_start"][i] == 0
            assert v.rows["h_prime"][i] == pytest.approx(ref.entropy[0], abs=1e-4)
            assert v.rows["nll_prime"][i] == pytest.approx(ref.nll[0], abs=1e-4)
            assert v.rows["h"][i] == pytest.approx(alone.entropy[t], abs=1e-4)
    # all positions: one pass per (doc, chunk) reading every scored token of the document
    passes = {(p.doc_id, p.chunk_id): p for p in got["all"].passes}
    assert sorted(passes) == [("a", "x"), ("a", "y"), ("b", "y")]
    assert passes[("a", "x")].positions.tolist() == list(range(1, 60))
    assert got["all"].pair_passes == got["anchors"].pair_passes == 3
    assert got["all"].forward_tokens > got["anchors"].forward_tokens  # ("a", "x") uncut


def test_late_anchors_of_a_long_document_are_verified_on_a_truncated_context(tiny_llama):
    from models.verification import VerifySettings, doc_segments, verify_candidates

    (doc,) = _seqs([200], 13)
    (chunk,) = _seqs([40], 14)
    cfg = ScoringConfig(window=128, overlap=32, token_budget=512)
    rows = [("d", 5, "c"), ("d", 120, "c"), ("d", 199, "c")]
    v = verify_candidates(tiny_llama, cfg, _cands(rows), {"d": doc}, {"c": chunk},
                          VerifySettings(positions="anchors"))
    assert v.rows["status"].tolist() == ["ok"] * 3  # the old grouped pass: too_long
    segs = doc_segments(200, 128 - 40, 32, 1)
    assert len(segs) > 1
    for i, (_, t, _) in enumerate(rows):
        w = next(w for w in segs if w.score_from <= t < w.end)
        s = v.rows["context_start"][i]
        assert s == w.start and (t < 88 or s > 0)
        seg = doc[s:t + 1]
        (with_chunk,) = score_positions(tiny_llama, [np.concatenate([chunk, seg])],
                                        [np.array([40 + t - s])], cfg)
        (alone,) = score_positions(tiny_llama, [seg], [np.array([t - s])], cfg)
        assert v.rows["h_prime"][i] == pytest.approx(with_chunk.entropy[0], abs=1e-4)
        assert v.rows["h"][i] == pytest.approx(alone.entropy[0], abs=1e-4)
        assert v.rows["nll"][i] == pytest.approx(alone.nll[0], abs=1e-4)
    # the old grouped pass drops the whole (document, chunk) group
    (old,), _ = verify_grouped(tiny_llama, [doc], [chunk], [Pair(0, 0, np.array([5, 199]))],
                               cfg)
    assert old.status == "too_long"


def test_a_chunk_that_leaves_no_room_marks_its_rows_too_long(tiny_llama):
    from models.verification import verify_candidates

    v = verify_candidates(tiny_llama, ScoringConfig(window=41), _cands([("d", 3, "c")]),
                          {"d": _seqs([10], 15)[0]}, {"c": _seqs([40], 16)[0]})
    assert v.rows["status"].tolist() == ["too_long"] and np.isnan(v.rows["h_prime"][0])
    empty = verify_candidates(tiny_llama, ScoringConfig(), _cands([]), {}, {})
    assert empty.passes == [] and empty.forward_tokens == 0


# --- shared-prefix passes: one chunk retrieved by several roots ------------------------------
@pytest.mark.parametrize("bos", [None, 5])
def test_scores_after_a_cached_prefix_equal_the_full_passes(tiny_llama, bos):
    from models.scoring import score_positions_after_prefix

    (prefix,) = _seqs([21], 20)
    seqs = _seqs([30, 7, 15, 1], 21)
    pos = [np.arange(21, 51), np.array([21, 27]), np.array([25, 35]), np.array([21])]
    cfg = ScoringConfig(token_budget=40, bos_token_id=bos)  # several padded batches
    got, tokens = score_positions_after_prefix(tiny_llama, prefix, seqs, pos, cfg)
    ref = score_positions(tiny_llama, [np.concatenate([prefix, s]) for s in seqs], pos, cfg)
    for g, r in zip(got, ref, strict=True):
        np.testing.assert_allclose(g.entropy, r.entropy, atol=1e-4)
        np.testing.assert_allclose(g.nll, r.nll, atol=1e-4)
    lead = bos is not None
    assert tokens == lead + 21 + sum(len(s) for s in seqs)  # the prefix once
    with pytest.raises(ValueError, match="positions"):
        score_positions_after_prefix(tiny_llama, prefix, seqs[:1], [np.array([20])], cfg)


@pytest.mark.parametrize("bos", [None, 5])
@pytest.mark.parametrize("budget", [400, 60])
@pytest.mark.parametrize("pack", [True, False])
def test_many_prefixes_of_different_lengths_each_run_once(tiny_llama, bos, budget, pack,
                                                          monkeypatch):
    """Rows behind prefixes of different lengths share batches, packed end to end in one
    row on a cache of the wave's prefixes (each row on its own prefix's columns), or padded
    (cache columns past a short prefix masked); positions continue each row's prefix; a
    small budget splits the prefixes into waves and the rows into batches. Same scores as
    the full passes."""
    from models.scoring import score_positions_after_prefixes

    prefixes = _seqs([21, 4, 33, 1], 30)
    seqs = _seqs([30, 7, 15, 1, 12, 9], 31)
    prefix_of = [0, 2, 1, 0, 3, 2]
    pos = [len(prefixes[k]) + np.array(p) for k, p in zip(
        prefix_of, [[0, 5, 29], [0, 6], [3, 14], [0], [0, 11], [2, 8]], strict=True)]
    import models.scoring

    waves = []
    packed = models.scoring._rows_packed
    monkeypatch.setattr(models.scoring, "_rows_packed",
                        lambda *a: waves.append(1) or packed(*a))  # counts, then runs it
    cfg = ScoringConfig(token_budget=budget, bos_token_id=bos, pack=pack)
    got, tokens = score_positions_after_prefixes(tiny_llama, prefixes, seqs, prefix_of, pos,
                                                 cfg)
    assert bool(waves) == pack  # the packed path ran, or the padded one alone
    full = [np.concatenate([prefixes[k], s]) for k, s in zip(prefix_of, seqs, strict=True)]
    ref = score_positions(tiny_llama, full, pos, cfg)
    for g, r in zip(got, ref, strict=True):
        np.testing.assert_allclose(g.entropy, r.entropy, atol=1e-4)
        np.testing.assert_allclose(g.nll, r.nll, atol=1e-4)
    lead = bos is not None
    assert tokens == sum(len(p) + lead for p in prefixes) + sum(map(len, seqs))


@pytest.mark.parametrize("positions", ["anchors", "all"])
@pytest.mark.parametrize("pack", [True, False])
def test_stage_with_shared_chunks_equals_the_stage_without_the_cache(tiny_llama, positions,
                                                                     pack):
    from models.verification import VerifySettings, verify_candidates

    docs = dict(zip("abcd", _seqs([60, 45, 200, 30], 22), strict=True))
    chunks = dict(zip("xyz", _seqs([20, 33, 40], 23), strict=True))
    # x: three roots; y: two roots; z: one root (grouped path); c is long: two segments
    rows = [("a", 10, "x"), ("a", 40, "x"), ("b", 44, "x"), ("c", 150, "x"), ("d", 3, "x"),
            ("a", 59, "y"), ("c", 7, "y"), ("c", 190, "y"), ("b", 20, "z")]
    cfg = ScoringConfig(window=128, overlap=32, token_budget=160, pack=pack)
    got = {cache: verify_candidates(tiny_llama, cfg, _cands(rows), docs, chunks,
                                    VerifySettings(positions=positions, prefix_cache=cache))
           for cache in (True, False)}
    on, off = got[True], got[False]
    assert on.rows["status"].tolist() == off.rows["status"].tolist() == ["ok"] * len(rows)
    for key in ("h_prime", "nll_prime", "h", "nll"):
        np.testing.assert_allclose(on.rows[key], off.rows[key], atol=1e-4)
    for p, q in zip(on.passes, off.passes, strict=True):
        np.testing.assert_array_equal(p.positions, q.positions)
        np.testing.assert_allclose(p.h_prime, q.h_prime, atol=1e-4)
        np.testing.assert_allclose(p.nll_prime, q.nll_prime, atol=1e-4)
    assert on.pair_passes == off.pair_passes
    assert on.forward_tokens < off.forward_tokens


def test_stage_with_packed_batches_equals_the_padded_stage():
    from models.verification import VerifySettings, verify_candidates
    from tests.conftest import make_tiny_llama

    model = make_tiny_llama(init_std=0.3)
    docs = dict(zip("abc", _seqs([60, 45, 200], 24), strict=True))
    chunks = dict(zip("xyz", _seqs([20, 33, 40], 25), strict=True))
    rows = [("a", 10, "x"), ("b", 44, "x"), ("c", 150, "y"), ("a", 59, "z"), ("b", 3, "z")]
    got = {pack: verify_candidates(model, ScoringConfig(window=128, overlap=32,
                                                        token_budget=160, pack=pack),
                                   _cands(rows), docs, chunks, VerifySettings(positions="all"))
           for pack in (False, True)}
    for key in ("h_prime", "nll_prime", "h", "nll"):
        np.testing.assert_allclose(got[True].rows[key], got[False].rows[key], atol=1e-5)
    assert got[True].forward_tokens == got[False].forward_tokens


def test_known_passes_are_carried_over_and_only_new_pairs_are_forwarded(tiny_llama, tmp_path):
    """A re-run with the stored passes forwards only the new chunk's pairs (and no baseline:
    the root's is in a stored pass), and its rows equal a from-scratch run's."""
    from lakehouse import pass_store
    from models.verification import VerifySettings, verify_candidates

    docs = dict(zip(["a", "b"], _seqs([60, 45], 21), strict=True))
    chunks = dict(zip(["x", "y", "z"], _seqs([20, 33, 17], 22), strict=True))
    old = [("a", 10, "x"), ("a", 40, "x"), ("b", 44, "y"), ("a", 59, "y")]
    new = [*old, ("a", 40, "z")]
    cfg = ScoringConfig(window=256, token_budget=200)
    run = {"settings": VerifySettings(positions="all"), "chunk_reserve": 40, "identity": "s"}
    first = verify_candidates(tiny_llama, cfg, _cands(old), docs, chunks, **run)
    path = str(tmp_path / "passes.parquet")
    pass_store.save(first.passes, path)
    known = pass_store.load(path)
    assert sorted(known) == sorted(p.key for p in first.passes)
    update = verify_candidates(tiny_llama, cfg, _cands(new), docs, chunks, known=known, **run)
    scratch = verify_candidates(tiny_llama, cfg, _cands(new), docs, chunks, **run)
    assert update.reused_passes == 3 and update.pair_passes == 1
    assert update.reused_baselines == 1 and update.baseline_tokens == 0
    assert update.forward_tokens == len(chunks["z"]) + len(docs["a"])
    assert scratch.forward_tokens > 3 * update.forward_tokens
    for k in ("h", "nll", "h_prime", "nll_prime"):
        np.testing.assert_allclose(update.rows[k], scratch.rows[k], atol=1e-4)
    assert [p.key for p in update.passes] == [p.key for p in scratch.passes]
    # what the key hashes: another scorer identity, another token, another segment plan
    other = verify_candidates(tiny_llama, cfg, _cands(new), docs, chunks, known=known,
                              **{**run, "identity": "t"})
    assert other.reused_passes == 0
    edited = {**chunks, "x": chunks["x"].copy()}
    edited["x"][3] += 1
    assert verify_candidates(tiny_llama, cfg, _cands(old), docs, edited, known=known,
                             **run).reused_passes == 2  # ("a", "y"), ("b", "y") kept; x not


def test_a_run_whose_passes_are_all_stored_loads_no_model(tiny_llama):
    from models.verification import VerifySettings, verify_candidates

    docs = dict(zip(["a"], _seqs([50], 31), strict=True))
    chunks = dict(zip(["x", "y"], _seqs([20, 25], 32), strict=True))
    rows = [("a", 10, "x"), ("a", 30, "y")]
    cfg = ScoringConfig(window=256, token_budget=200)
    run = {"settings": VerifySettings(positions="all"), "chunk_reserve": 40, "identity": "s"}
    first = verify_candidates(tiny_llama, cfg, _cands(rows), docs, chunks, **run)
    loads = []

    def loader():
        loads.append(1)
        return tiny_llama

    again = verify_candidates(loader, cfg, _cands(rows), docs, chunks,
                              known={p.key: p for p in first.passes}, **run)
    assert loads == [] and again.forward_tokens == 0 and again.reused_passes == 2
    for k in ("h", "nll", "h_prime", "nll_prime"):
        np.testing.assert_array_equal(again.rows[k], first.rows[k])
    verify_candidates(loader, cfg, _cands([*rows, ("a", 40, "x")]), docs,
                      {**chunks, "x": (chunks["x"] + 1) % 90},
                      known={p.key: p for p in first.passes},
                      **run)
    assert loads == [1]  # a changed chunk: its pass is forwarded, so the model is loaded
