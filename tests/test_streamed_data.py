"""The streamed packed-data reader: the batches it reads equal the in-memory ones in the same
order, a resumed run gets exactly the uninterrupted tail without reading what it skips, no
more than one row group is held at a time, several files of several row groups read as one
dataset, the held-out sequences never reach a training batch, and the legacy single file is
still read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from lakehouse import tables
from models.packed_data import PackedData
from models.streamed_data import StreamedPackedData

T = 24


def packed_rows(n: int, seed: int = 0, vocab: int = 97) -> list[dict]:
    """``n`` packed sequences of T tokens (ids below ``vocab``) with 1-3 units each; seq ids
    not in file order."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in rng.permutation(n):
        cuts = sorted(rng.choice(np.arange(4, T - 3), rng.integers(0, 3), replace=False))
        bounds = [0, *map(int, cuts), T]
        rows.append({"seq_id": int(s) * 7 + 3, "input_ids": rng.integers(1, vocab, T).tolist(),
                     "indices": [[a, b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)],
                     "n_pad": 0})
    return rows


def write_parts(rows: list[dict], folder: Path, per_file: int, per_group: int) -> list[str]:
    """``rows`` as sequences/part-00000.parquet, ... of ``per_file`` rows, row groups of
    ``per_group`` (the packed dataset's layout)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(0, len(rows), per_file):
        path = folder / f"part-{i // per_file:05d}.parquet"
        pq.write_table(pa.Table.from_pylist(rows[i:i + per_file], schema=tables.PACKED_SEQUENCES),
                       path, row_group_size=per_group)
        paths.append(str(path))
    return paths


def write_weights(rows: list[dict], path: Path, per_group: int, seed: int = 1) -> dict:
    """A token_weights file for ``rows`` (random frozen log-probs, NaN on each first token),
    in another row order than the sequences; returns {seq_id: (logp, full_context)}."""
    rng = np.random.default_rng(seed)
    out = {}
    for r in rows:
        lp = -rng.exponential(2.0, T).astype(np.float32)
        lp[[a for a, _ in r["indices"]]] = np.nan
        fc = np.zeros(T, bool)
        fc[:3] = True
        out[r["seq_id"]] = (lp, fc)
    ids = sorted(out)
    table = pa.table({"seq_id": pa.array(ids, pa.int64()),
                      "logp_short": [out[s][0].tolist() for s in ids],
                      "full_context": [out[s][1].tolist() for s in ids],
                      "scorer_id": ["tiny"] * len(ids), "n": [8] * len(ids),
                      "stride": [6] * len(ids)}, schema=tables.TOKEN_WEIGHTS)
    pq.write_table(table, path, row_group_size=per_group)
    return out


@pytest.fixture
def dataset(tmp_path):
    rows = packed_rows(23)
    files = write_parts(rows, tmp_path / "packed" / "sequences", per_file=10, per_group=3)
    weights = write_weights(rows, tmp_path / "weights.parquet", per_group=4)
    return rows, files, tmp_path / "weights.parquet", weights


def _flat(steps):
    return [(step, k, b) for step, micro in steps for k, b in enumerate(micro)]


def test_streamed_batches_equal_the_in_memory_ones_in_the_same_order(dataset):
    rows, files, weights_path, weights = dataset
    assert len(files) == 3 and pq.ParquetFile(files[0]).num_row_groups == 4
    data = StreamedPackedData(files, str(weights_path), heldout=2, shuffle_window=2)
    memory = PackedData.from_rows(rows, [{"seq_id": s, "logp_short": lp.tolist(),
                                          "full_context": fc.tolist()}
                                         for s, (lp, fc) in weights.items()])
    train, _ = memory.split(2)
    assert len(data) == len(train) == 21
    seed, mb, ga, steps = 5, 2, 2, 14  # 56 sequences drawn: into the third epoch
    got = _flat(data.steps(mb, ga, seed, 0, steps))
    orders = {e: data.order_positions(seed, e) for e in range(3)}
    for e in range(3):  # each epoch a permutation of the training sequences, seeded by epoch
        assert sorted(orders[e].tolist()) == list(range(21))
    assert not np.array_equal(orders[0], orders[1])
    flat = np.concatenate([orders[e] for e in range(3)])
    for step, k, batch in got:
        first = step * mb * ga + k * mb
        want = train.batch(flat[first:first + mb].tolist())
        torch.testing.assert_close(batch.input_ids, want.input_ids)
        assert batch.spans == want.spans
        torch.testing.assert_close(batch.logp_short, want.logp_short, equal_nan=True)
        torch.testing.assert_close(batch.full_context, want.full_context)
    assert len(got) == steps * ga
    passed = [(u, row) for spans, lp in data.training_spans() for u, row in zip(spans, lp,
                                                                              strict=True)]
    assert len(passed) == 21  # the pre-pass: every training sequence's spans and weights
    for units, row in passed:
        [sid] = [r["seq_id"] for r in rows if [tuple(x) for x in r["indices"]] == units
                 and np.array_equal(weights[r["seq_id"]][0], row, equal_nan=True)]
        assert sid in train.seq_ids
    again = _flat(StreamedPackedData(files, str(weights_path), heldout=2,
                                     shuffle_window=2).steps(mb, ga, seed, 0, steps))
    assert all(torch.equal(a[2].input_ids, b[2].input_ids) for a, b in zip(got, again,
                                                                           strict=True))
    other = _flat(data.steps(mb, ga, seed + 1, 0, steps))
    assert not all(torch.equal(a[2].input_ids, b[2].input_ids) for a, b in zip(got, other,
                                                                               strict=True))


def test_a_resumed_run_reads_exactly_the_uninterrupted_tail_and_skips_without_reading(
        dataset):
    _, files, weights_path, _ = dataset
    full = StreamedPackedData(files, str(weights_path), heldout=2)
    whole = _flat(full.steps(1, 2, 0, 0, 20))
    resumed = StreamedPackedData(files, str(weights_path), heldout=2)
    s = 13  # mid-way through the second epoch (21 sequences, 2 a step)
    tail = _flat(resumed.steps(1, 2, 0, s, 20))
    assert [(a, k) for a, k, _ in tail] == [(a, k) for a, k, _ in whole if a >= s]
    for (_, _, a), (_, _, b) in zip(tail, [w for w in whole if w[0] >= s], strict=True):
        assert torch.equal(a.input_ids, b.input_ids) and a.spans == b.spans
        torch.testing.assert_close(a.logp_short, b.logp_short, equal_nan=True)
    # it read only the row groups from its first row on: the skipped ones were never read
    assert resumed.counters.rows_read < full.counters.rows_read
    groups, _, _ = resumed.epoch_order(0, 1)
    first_group = int(groups[(s * 2) % 21])
    assert resumed.counters.groups_read[0] == resumed._groups[first_group]


def test_the_reader_holds_at_most_one_row_group(dataset):
    _, files, weights_path, _ = dataset
    data = StreamedPackedData(files, str(weights_path), heldout=2, shuffle_window=1)
    steps = list(data.steps(2, 3, 1, 0, 12))  # 72 sequences: several epochs, steps straddle
    assert len(steps) == 12
    c = data.counters
    assert c.peak_rows_held <= data.max_group_rows == 3
    assert c.row_groups_read >= 3 * 8  # every row group of each epoch (8 of them), re-read
    assert c.weight_rows_peak <= 4  # a weights row group, not the weights file
    wide = StreamedPackedData(files, None, heldout=2, shuffle_window=3)
    list(wide.steps(1, 1, 1, 0, 40))
    assert 3 < wide.counters.peak_rows_held <= 3 * wide.max_group_rows


def test_several_files_read_as_one_dataset_and_the_held_out_never_train(dataset, tmp_path):
    rows, files, _, _ = dataset
    data = StreamedPackedData(files, heldout=3)
    last = sorted(r["seq_id"] for r in rows)[-3:]
    assert data.heldout_ids.tolist() == last
    by_ids = {tuple(r["input_ids"]): r["seq_id"] for r in rows}
    seen = set()
    for _, micro in data.steps(1, 1, 2, 0, 3 * len(data)):
        for b in micro:
            seen.add(by_ids[tuple(b.input_ids[0].tolist())])
    assert seen == {r["seq_id"] for r in rows} - set(last)  # every other one, from each file
    held = list(data.heldout())
    assert sorted(s for s, _, _ in held) == last
    for s, ids, spans in held:
        [row] = [r for r in rows if r["seq_id"] == s]
        assert ids.tolist() == row["input_ids"] and spans == [tuple(u) for u in row["indices"]]
    spans = [u for group, _ in data.training_spans() for u in group]  # the pre-pass
    assert sorted(map(str, spans)) == sorted(str([tuple(u) for u in r["indices"]])
                                             for r in rows if r["seq_id"] not in last)
    # one sequence only: nothing is held out (as PackedData.split)
    single = write_parts(rows[:1], tmp_path / "one" / "sequences", 10, 3)
    assert len(StreamedPackedData(single, heldout=1)) == 1


def test_the_sequences_folder_is_preferred_to_the_legacy_single_file(tmp_path):
    from lakehouse.packed_files import dataset_files

    rows = packed_rows(5)
    legacy = tmp_path / "old" / "sequences.parquet"
    legacy.parent.mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=tables.PACKED_SEQUENCES), legacy)
    assert dataset_files(str(legacy.parent)) == [str(legacy)]
    assert len(StreamedPackedData(dataset_files(str(legacy.parent)), heldout=1)) == 4
    parts = write_parts(rows, tmp_path / "old" / "sequences", per_file=2, per_group=1)
    assert dataset_files(str(legacy.parent)) == parts  # the folder wins
    with pytest.raises(FileNotFoundError):
        dataset_files(str(tmp_path / "none"))


def test_each_rank_reads_its_share_of_the_global_batch_and_one_row_group(dataset):
    _, files, weights_path, _ = dataset
    single = StreamedPackedData(files, str(weights_path), heldout=2)
    one = _flat(single.steps(2, 4, 7, 0, 9))
    ranks = [StreamedPackedData(files, str(weights_path), heldout=2) for _ in range(2)]
    shares = [_flat(r.steps(2, 2, 7, 0, 9, rank=i, world=2)) for i, r in enumerate(ranks)]
    for step in range(9):  # rank 0's micro-batches, then rank 1's: the one-process step
        want = [b for s, _, b in one if s == step]
        got = [b for share in shares for s, _, b in share if s == step]
        assert len(got) == len(want) == 4
        for a, b in zip(got, want, strict=True):
            assert torch.equal(a.input_ids, b.input_ids) and a.spans == b.spans
    for r in ranks:  # each reads only the row groups of its rows, and one at a time
        assert r.counters.peak_rows_held <= r.max_group_rows
        assert r.counters.row_groups_read < single.counters.row_groups_read


def test_a_sequence_without_token_weights_is_refused(dataset, tmp_path):
    rows, files, _, _ = dataset
    write_weights(rows[:-1], tmp_path / "short.parquet", per_group=4)
    with pytest.raises(KeyError, match="re-materialize token_weights"):
        StreamedPackedData(files, str(tmp_path / "short.parquet"))
