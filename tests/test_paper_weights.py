"""Token weights as the paper defines them (SPEC B.1-2): the frozen scorer's s_i on every
token, the first window included; unfrozen s_i = 0 on the first n; sparse selection that
never keeps an unscorable token and breaks ties by a seeded draw; kappa per variant; one n;
one vocabulary."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from lakehouse import storage, tables
from lakehouse.packed_files import row_groups, sequence_files, write_row_groups, write_sequences
from models.attention import UNIT_SDPA, unit_hidden, use_attention
from models.settings import TrainSettings
from models.short_context import (
    ShortContextSummary,
    check_shared_vocabulary,
    short_context_logprobs,
    short_context_n,
    short_context_row_groups,
    short_context_table,
)
from models.sparse_selection import draw_seed, scorable_fraction, sparse_weights
from models.token_weights import ignore_mask
from models.training import PackedBatch, batch_scores, batch_weights, scorable_fractions
from models.weighted_loss import token_nll
from tests.conftest import make_tiny_llama

T = 90
SPANS = [(0, 40), (40, 90)]
N, OVERLAP = 16, 4


def _logp_of(model, ids: np.ndarray) -> np.ndarray:
    """log p(x_t | x_<t) of a sequence on its own (position 0: NaN), a direct forward."""
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.as_tensor(ids[None])).logits[0].float(), -1)
    out = np.full(len(ids), np.nan)
    out[1:] = logp[:-1].gather(-1, torch.as_tensor(ids[1:])[:, None])[:, 0].numpy()
    return out


def test_frozen_scores_on_the_first_window_equal_a_direct_computation():
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 97, T)
    scorer = make_tiny_llama(seed=2, init_std=0.3)  # theta': frozen, context n
    model = make_tiny_llama(seed=5, init_std=0.3)  # theta: the model in training
    table = short_context_table(scorer, [0], [ids.tolist()], [SPANS], N, OVERLAP,
                                token_budget=64, block_size=16)
    assert table["aligned"] and table["scorable_fraction"].tolist() == [1.0]
    logp_short = table["columns"]["logp_short"][0]
    full = table["columns"]["full_context"][0]
    # the trainer's long-context side: the unit path of the model in training
    use_attention(model, UNIT_SDPA)
    x = torch.as_tensor(ids[None])
    with torch.no_grad():
        nll = token_nll(unit_hidden(model.model, x, [SPANS]), model.lm_head, x)
    batch = PackedBatch(x, [SPANS], torch.from_numpy(logp_short[None]),
                        torch.from_numpy(full[None]))
    valid = ignore_mask(x, [SPANS])
    s, eligible = batch_scores(TrainSettings(mode="dense", frozen=True), model, batch, nll,
                               valid)
    assert torch.equal(eligible, valid)  # frozen: every counted token has a score
    checked = 0
    for a, e in SPANS:
        long = _logp_of(model, ids[a:e])  # log p(N): the whole unit
        for t in range(a + 1, min(a + N, e)):  # the unit's first window
            short = _logp_of(scorer, ids[a:t + 1])[-1]  # log p'(n): at most n tokens
            assert full[t]
            assert s[0, t].item() == pytest.approx(abs(short - long[t - a]), abs=1e-5)
            checked += 1
    assert checked == 2 * (N - 1)
    first_window = s[0][torch.from_numpy(full)]
    assert (first_window > 1e-3).float().mean() > 0.9  # not 0: two different models
    # dense weights at lambda 0 are N * s / sum(s) over the counted tokens
    w, _ = batch_weights(TrainSettings(mode="dense", frozen=True, lam=0.0), model, batch, nll,
                         valid)
    torch.testing.assert_close(w[valid], valid.sum() * s[valid] / s[valid].sum())


def test_unfrozen_scores_are_zero_and_ineligible_on_each_units_first_n():
    rng = np.random.default_rng(1)
    x = torch.as_tensor(rng.integers(1, 97, (1, T)))
    model = make_tiny_llama(seed=5, init_std=0.3)
    use_attention(model, UNIT_SDPA)
    with torch.no_grad():
        nll = token_nll(unit_hidden(model.model, x, [SPANS]), model.lm_head, x)
    valid = ignore_mask(x, [SPANS])
    settings = TrainSettings(mode="sparse", frozen=False, n=N, overlap=OVERLAP)
    s, eligible = batch_scores(settings, model, PackedBatch(x, [SPANS]), nll, valid)
    expect = torch.zeros_like(valid)
    for a, e in SPANS:
        expect[0, a + N:e] = True
    assert torch.equal(eligible, expect)
    assert (s[~expect] == 0).all() and (s[expect] > 0).all()
    w, _ = batch_weights(settings, model, PackedBatch(x, [SPANS]), nll, valid, seed=3)
    assert (w[~expect] == 0).all()
    assert int((w > 0).sum()) == round(settings.sparse_kappa * int(valid.sum()))
    fractions = scorable_fractions([SPANS], settings)
    assert fractions[0] == pytest.approx(float(expect.sum() / valid.sum()))
    assert scorable_fraction(eligible, valid).item() == pytest.approx(fractions[0])


def test_sparse_selection_ignores_ineligible_tokens_and_breaks_ties_by_a_seeded_draw():
    t = 100
    s = torch.ones(1, t)  # every eligible token ties
    s[0, :10] = 5.0  # the highest scores, but not eligible
    valid = torch.ones(1, t, dtype=torch.bool)
    valid[0, 0] = False
    eligible = valid.clone()
    eligible[0, :10] = False
    kappa = 0.2
    keep = round(kappa * 99)
    picks = [sparse_weights(s, eligible, valid, kappa, seed) for seed in (0, 0, 1)]
    for w in picks:
        assert (w[0, :10] == 0).all()  # never an ineligible token, whatever its score
        assert int((w > 0).sum()) == keep
        assert torch.all((w == 0) | (w == 1 / kappa))
    torch.testing.assert_close(picks[0], picks[1])  # same seed, same choice
    assert not torch.equal(picks[0], picks[2])  # another seed, another draw
    chosen = torch.nonzero(picks[0][0]).flatten()
    assert chosen.tolist() != list(range(10, 10 + keep))  # not the earliest positions
    assert chosen.float().mean() > 30  # spread over the tied tokens (earliest: mean 29.5)
    # a clear score still wins over a tie, and scarce eligible tokens are all kept
    s2 = s.clone()
    s2[0, 90] = 2.0
    assert sparse_weights(s2, eligible, valid, kappa, 0)[0, 90] == 1 / kappa
    few = torch.zeros_like(eligible)
    few[0, [20, 50]] = True
    w = sparse_weights(s, few, valid, kappa, 0)
    assert torch.nonzero(w[0]).flatten().tolist() == [20, 50]
    assert sparse_weights(s, torch.zeros_like(valid), valid, kappa, 0).sum() == 0


def test_draw_seed_depends_on_seed_and_step():
    assert draw_seed(0, 3, 1) == draw_seed(0, 3, 1)
    assert len({draw_seed(0, 3, 1), draw_seed(0, 4, 1), draw_seed(1, 3, 1),
                draw_seed(0, 3, 0)}) == 4


def test_kappa_defaults_per_variant_and_n_resolves_one_way():
    assert TrainSettings(frozen=True).sparse_kappa == 0.4
    assert TrainSettings(frozen=False).sparse_kappa == 0.2
    assert TrainSettings(frozen=False, kappa=0.3).sparse_kappa == 0.3
    assert short_context_n(0, 8192) == 8192  # 0: the frozen scorer's window
    assert short_context_n(1024, 8192) == 1024
    with pytest.raises(ValueError):
        short_context_n(0, 0)
    assert not TrainSettings().checkpointing(16384) and TrainSettings().checkpointing(16385)
    assert TrainSettings(gradient_checkpointing=True).checkpointing(128)


def test_models_must_share_a_vocabulary():
    vocab = {"a": 0, "b": 1, "c": 2}
    check_shared_vocabulary({"frozen scorer 'x'": vocab, "trained model 'y'": dict(vocab)})
    with pytest.raises(ValueError, match="frozen scorer 'x'.*trained model 'y'"):
        check_shared_vocabulary({"frozen scorer 'x'": vocab,
                                 "trained model 'y'": {"a": 0, "c": 1, "b": 2}})


def test_the_first_window_is_still_skipped_for_unfrozen_scoring():
    """Unfrozen scoring needs nothing on the first window, so it never runs it."""
    ids = np.random.default_rng(2).integers(1, 97, (1, T))
    model = make_tiny_llama(seed=1)
    lp, full = short_context_logprobs(model, ids, [SPANS], N, OVERLAP)
    assert np.isnan(lp[full]).all() and np.isfinite(lp[0, N:40]).all()


def _packed(rows: int, seed: int = 0):
    """Packed sequences of T tokens (the SPANS units), as packing writes them."""
    rng = np.random.default_rng(seed)
    return pa.Table.from_pydict(
        {"seq_id": list(range(rows)), "input_ids": list(rng.integers(1, 97, (rows, T),
                                                                      dtype=np.int32)),
         "indices": [[list(s) for s in SPANS]] * rows, "n_pad": [0] * rows},
        schema=tables.PACKED_SEQUENCES)


def test_streamed_weights_equal_the_whole_dataset_at_once_and_rerun_to_the_same_bytes(
        tmp_path):
    """The token_weights stage a row group at a time over several part files gives the
    in-memory computation's rows, in row groups as bounded as the sequences', and the same
    bytes on a re-run; the summary's reservoir is exact below its cap and bounded above."""
    seqs = _packed(7)
    folder = str(tmp_path / "packed")
    write_sequences(seqs, folder, max_file_mb=3 * 400 / (1 << 20), row_group_rows=2)
    files = sequence_files(folder)
    assert len(files) >= 3
    scorer = make_tiny_llama(seed=2, init_std=0.3)
    whole = short_context_table(scorer, list(range(7)), seqs["input_ids"].to_pylist(),
                                [SPANS] * 7, N, OVERLAP, token_budget=64, block_size=16)

    def write(path: str, cap: int) -> ShortContextSummary:
        summary = ShortContextSummary(N, far_cap=cap)
        groups = short_context_row_groups(
            scorer, row_groups(files, ["seq_id", "input_ids", "indices"]), N, OVERLAP, 64, 16,
            summary)
        write_row_groups(path, tables.TOKEN_WEIGHTS, (pa.Table.from_pydict(
            {**g, "scorer_id": ["s"] * len(g["seq_id"]), "n": [N] * len(g["seq_id"]),
             "stride": [N - OVERLAP] * len(g["seq_id"])}) for g in groups), 2)
        return summary

    first = str(tmp_path / "a.parquet")
    summary = write(first, cap=10**6)
    got = pq.read_table(first)
    assert got["seq_id"].to_pylist() == list(range(7))
    for i in range(7):
        np.testing.assert_array_equal(np.asarray(got["logp_short"][i].as_py(), np.float32),
                                      whole["columns"]["logp_short"][i])
        assert got["full_context"][i].as_py() == whole["columns"]["full_context"][i].tolist()
    meta = pq.ParquetFile(first).metadata
    assert max(meta.row_group(g).num_rows for g in range(meta.num_row_groups)) <= 2
    assert summary.aligned and summary.sequences == 7 and summary.tokens == 7 * T
    np.testing.assert_array_equal(summary.far_logp, whole["far_logp"])  # exact below cap
    np.testing.assert_array_equal(summary.scorable_fraction, whole["scorable_fraction"])
    again = str(tmp_path / "b.parquet")
    capped = write(again, cap=50)
    assert storage.read_bytes(again) == storage.read_bytes(first)
    assert capped.far_logp.size == 50 and capped.far_seen == whole["far_logp"].size > 50
    assert set(capped.far_logp.tolist()) <= set(whole["far_logp"].tolist())


def test_streamed_weights_refuse_rows_out_of_seq_id_order(tmp_path):

    seqs = _packed(4).take([0, 1, 3, 2])
    write_sequences(seqs, str(tmp_path / "p"), max_file_mb=1, row_group_rows=2)

    groups = short_context_row_groups(
        make_tiny_llama(seed=2), row_groups(sequence_files(str(tmp_path / "p")),
                                            ["seq_id", "input_ids", "indices"]),
        N, OVERLAP, 64, 16, ShortContextSummary(N))
    with pytest.raises(ValueError, match=r"part-00000\.parquet, row group 1: seq_id not "
                                         r"ascending"):
        list(groups)
