"""Packed sequences streamed from Parquet a row group at a time, in a seeded order that
resumes exactly.

A packed dataset is one or more Parquet files (``sequences/part-*.parquet``, or the single
``sequences.parquet`` of an earlier lake) of row groups of a bounded number of rows, columns
``seq_id``, ``input_ids``, ``indices``. Opening the dataset reads only the ``seq_id`` column
(8 bytes a sequence; a 131,072-token sequence holds 512 KiB of ids), which fixes the held-out
split and the order; the sequences themselves are read when a step needs them, one row group
at a time, and dropped when the order has passed their last row.

Order (as mosaicml-streaming's block shuffles, at row-group granularity): per epoch ``e`` a
generator seeded by (seed, e) permutes the row groups, cuts the permuted list into windows of
``shuffle_window`` row groups, and permutes the training rows of each window. A step's rows
are then a contiguous slice of the epoch order, so at most ``shuffle_window`` row groups are
held at once (plus the one a step may straddle into), and the rows of any step follow from
(seed, epoch, position) alone: a resumed run recomputes the order and starts reading at the
row group of its first row, reading nothing it skips.

Frozen token weights (``token_weights/<dataset>.parquet``, joined by ``seq_id``) are read
per row group as well: their ``seq_id`` column is indexed at open, and when a sequence row
group is loaded, the weight row groups holding its ids are read and only its rows kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from lakehouse.packed_files import list_values
from models.training import PackedBatch

Opener = Callable[[str], AbstractContextManager[IO[bytes]]]


def open_local(path: str) -> AbstractContextManager[IO[bytes]]:
    """The default opener: a local file (the lake passes lakehouse.storage.open_input)."""
    return open(path, "rb")  # noqa: SIM115 - a context manager for the caller


def _seq_id_groups(path: str, open_file: Opener) -> list[np.ndarray]:
    """The ``seq_id`` column of each row group of one Parquet file (nothing else is read)."""
    with open_file(path) as fh:
        pf = pq.ParquetFile(fh)
        return [pf.read_row_group(g, columns=["seq_id"]).column(0).to_numpy().astype(np.int64)
                for g in range(pf.num_row_groups)]


@dataclass
class _Loaded:
    """One sequence row group in memory: rows by their row number in the group."""

    input_ids: list[np.ndarray]
    spans: list[list[tuple[int, int]]]
    logp_short: list[np.ndarray] | None
    full_context: list[np.ndarray] | None


@dataclass
class ReadCounters:
    """What the reader read and held: the bound on memory is asserted on these."""

    rows_held: int = 0  # sequence rows of the row groups in memory now
    peak_rows_held: int = 0
    weight_rows_peak: int = 0  # rows of the largest token-weights row group decoded
    row_groups_read: int = 0
    rows_read: int = 0
    groups_read: list[tuple[int, int]] = field(default_factory=list)  # (file, group) in order


class StreamedPackedData:
    """A packed dataset on the lake, read a row group at a time.

    ``files``: the sequence Parquet files (paths or URLs; ``open_file`` opens one for random
    access). ``weights_file``: the dataset's token_weights Parquet, or None. ``heldout``: the
    last sequences by seq_id, never trained on (as models.packed_data.PackedData.split).
    Picklable (paths, seq ids and an opener that is a module-level function), so a spawned
    training process opens the same dataset without listing it again.
    """

    def __init__(self, files: Sequence[str], weights_file: str | None = None,
                 heldout: int = 0, shuffle_window: int = 1, open_file: Opener = open_local):
        if not files:
            raise ValueError("a packed dataset needs at least one sequences Parquet file")
        if shuffle_window < 1:
            raise ValueError("shuffle_window is a number of row groups, at least 1")
        self.files = list(files)
        self.weights_file = weights_file
        self.shuffle_window = shuffle_window
        self.open_file = open_file
        self.counters = ReadCounters()
        self._cache: dict[int, tuple[int, _Loaded]] = {}  # group -> (epoch, rows)
        self._epoch_cache: tuple | None = None
        self._groups: list[tuple[int, int]] = []  # (file, row group)
        self._ids: list[np.ndarray] = []  # seq_id of each row, per row group
        for f, path in enumerate(self.files):
            for g, ids in enumerate(_seq_id_groups(path, open_file)):
                self._groups.append((f, g))
                self._ids.append(ids)
        all_ids = np.concatenate(self._ids) if self._ids else np.zeros(0, np.int64)
        if len(np.unique(all_ids)) != len(all_ids):
            raise ValueError("packed sequences repeat a seq_id across files or row groups")
        n = len(all_ids)
        ranked = np.sort(all_ids)
        cut = n - min(heldout, max(n - 1, 0))
        self.heldout_ids = ranked[cut:]
        self.train_ids = ranked[:cut]  # seq_id order: PackedData.split's training part
        limit = ranked[cut] if cut < n else None  # held out: seq_id >= limit
        self._train_rows: list[np.ndarray] = []  # per row group, training rows by seq_id
        self._heldout_rows: list[np.ndarray] = []
        for ids in self._ids:
            by_id = np.argsort(ids, kind="stable")
            keep = ids[by_id] < limit if limit is not None else np.ones(len(ids), bool)
            self._train_rows.append(by_id[keep])
            self._heldout_rows.append(by_id[~keep])
        self.n_train = int(cut)
        self._weights_index: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        if weights_file is not None:  # seq_id -> (row group, row) of the weights, sorted
            w_groups = _seq_id_groups(weights_file, open_file)
            w_ids = np.concatenate(w_groups) if w_groups else np.zeros(0, np.int64)
            w_group = np.concatenate([np.full(len(g), i, np.int64)
                                      for i, g in enumerate(w_groups)]) if w_groups else w_ids
            w_row = np.concatenate([np.arange(len(g)) for g in w_groups]) if w_groups else w_ids
            by_id = np.argsort(w_ids, kind="stable")
            self._weights_index = (w_ids[by_id], w_group[by_id], w_row[by_id])
            at = np.searchsorted(self._weights_index[0], all_ids).clip(0, max(len(w_ids) - 1, 0))
            missing = all_ids[(self._weights_index[0][at] != all_ids) if len(w_ids) else
                              np.ones(len(all_ids), bool)]
            if len(missing):
                raise KeyError(f"token_weights has no row for sequences {missing[:5].tolist()}; "
                               "re-materialize token_weights after packed_dataset")

    def __len__(self) -> int:
        """Training sequences (the held-out ones excluded)."""
        return self.n_train

    @property
    def max_group_rows(self) -> int:
        return max((len(ids) for ids in self._ids), default=0)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_cache"], state["_epoch_cache"], state["counters"] = {}, None, ReadCounters()
        return state

    # -- order ------------------------------------------------------------------------------

    def epoch_order(self, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row group, row number) of every training sequence in epoch ``epoch``'s order,
        and per row group the last position where the order uses it (-1: never)."""
        if self._epoch_cache and self._epoch_cache[:2] == (seed, epoch):
            return self._epoch_cache[2:]
        rng = np.random.default_rng((seed, epoch))
        perm = rng.permutation(len(self._groups))
        groups, rows = [], []
        for start in range(0, len(perm), self.shuffle_window):
            window = perm[start:start + self.shuffle_window]
            g = np.concatenate([np.full(len(self._train_rows[k]), k, np.int64)
                                for k in window])
            r = np.concatenate([self._train_rows[k] for k in window]).astype(np.int64)
            within = rng.permutation(len(g))
            groups.append(g[within])
            rows.append(r[within])
        g_all, r_all = np.concatenate(groups), np.concatenate(rows)
        last = np.full(len(self._groups), -1, np.int64)
        np.maximum.at(last, g_all, np.arange(len(g_all)))
        self._epoch_cache = (seed, epoch, g_all, r_all, last)
        return g_all, r_all, last

    def order_positions(self, seed: int, epoch: int) -> np.ndarray:
        """The epoch order as indices into the training sequences in seq_id order: what an
        in-memory PackedData of the same rows (its ``split``'s training part) takes to give
        the same batches."""
        groups, rows, _ = self.epoch_order(seed, epoch)
        ids = np.asarray([self._ids[g][r] for g, r in zip(groups, rows, strict=True)],
                         np.int64)
        return np.searchsorted(self.train_ids, ids)

    # -- reading ----------------------------------------------------------------------------

    def _read_group(self, k: int, rows: np.ndarray | None = None) -> pa.Table:
        f, g = self._groups[k]
        with self.open_file(self.files[f]) as fh:
            table = pq.ParquetFile(fh).read_row_group(g, columns=["seq_id", "input_ids",
                                                                  "indices"])
        return table if rows is None else table.take(pa.array(rows))

    def _load(self, k: int, epoch: int) -> _Loaded:
        if k in self._cache:
            self._cache[k] = (epoch, self._cache[k][1])
            return self._cache[k][1]
        table = self._read_group(k)
        seq_ids = table.column("seq_id").to_numpy()
        loaded = _Loaded(list_values(table.column("input_ids")),
                         [[(int(a), int(b)) for a, b in units]
                          for units in table.column("indices").to_pylist()], None, None)
        del table
        if self._weights_index is not None:
            loaded.logp_short, loaded.full_context = self._load_weights(seq_ids)
        c = self.counters
        c.rows_held += len(seq_ids)
        c.peak_rows_held = max(c.peak_rows_held, c.rows_held)
        c.row_groups_read += 1
        c.rows_read += len(seq_ids)
        c.groups_read.append(self._groups[k])
        self._cache[k] = (epoch, loaded)
        return loaded

    def _load_weights(self, seq_ids: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The frozen log-probs and full-context flags of ``seq_ids``: the weight row groups
        that hold them are read one at a time and only these rows kept."""
        assert self._weights_index is not None and self.weights_file is not None
        ids, w_group, w_row = self._weights_index
        at = np.searchsorted(ids, seq_ids)
        where = list(zip(w_group[at].tolist(), w_row[at].tolist(), strict=True))
        lp: list = [None] * len(seq_ids)
        fc: list = [None] * len(seq_ids)
        with self.open_file(self.weights_file) as fh:
            pf = pq.ParquetFile(fh)
            for wg in sorted({g for g, _ in where}):
                mine = [(i, r) for i, (g, r) in enumerate(where) if g == wg]
                table = pf.read_row_group(wg, columns=["logp_short", "full_context"])
                self.counters.weight_rows_peak = max(self.counters.weight_rows_peak,
                                                     table.num_rows)
                part = table.take(pa.array([r for _, r in mine]))
                del table
                lps = list_values(part.column("logp_short"))
                fcs = list_values(part.column("full_context"))
                for j, (i, _) in enumerate(mine):
                    lp[i] = lps[j].astype(np.float32)
                    fc[i] = fcs[j].astype(bool)
        return lp, fc

    def _evict(self, k: int) -> None:
        held = self._cache.pop(k, None)
        if held is not None:
            self.counters.rows_held -= len(held[1].input_ids)

    def steps(self, micro_batch: int, grad_accum: int, seed: int, start_step: int,
              steps: int, rank: int = 0, world: int = 1
              ) -> Iterator[tuple[int, list[PackedBatch]]]:
        """(step, this rank's micro-batches) for steps ``start_step`` .. ``steps - 1``.

        A step takes the next ``micro_batch * grad_accum * world`` sequences of the order
        (epoch e ordered by seed + e); rank r takes the r-th contiguous share, as
        ``grad_accum`` micro-batches of ``micro_batch``. Each row taken is copied out, and a
        row group is dropped as soon as the order passes its last row (on every rank alike,
        whether or not the rank read it), so at most ``shuffle_window`` row groups are held.
        """
        if not self.n_train:
            raise ValueError("no training sequences (all held out or none packed)")
        per_rank = micro_batch * grad_accum
        per_step = per_rank * world
        for step in range(start_step, steps):
            first = step * per_step
            mine = range(first + rank * per_rank, first + (rank + 1) * per_rank)
            rows: list[tuple] = []
            for pos in range(first, first + per_step):
                epoch, offset = divmod(pos, self.n_train)
                groups, order_rows, last = self.epoch_order(seed, epoch)
                for k in [k for k, (e, _) in self._cache.items() if e < epoch]:
                    self._evict(k)  # loaded for an earlier epoch
                k = int(groups[offset])
                if pos in mine:
                    d, r = self._load(k, epoch), int(order_rows[offset])
                    rows.append((d.input_ids[r].copy(), d.spans[r],  # copies: the group
                                 None if d.logp_short is None else d.logp_short[r],  # can go
                                 None if d.full_context is None else d.full_context[r]))
                if last[k] == offset:
                    self._evict(k)
            yield step, [_batch(rows[i:i + micro_batch]) for i in range(0, per_rank,
                                                                       micro_batch)]

    def training_spans(self) -> Iterator[tuple[list[list[tuple[int, int]]],
                                              np.ndarray | None]]:
        """(spans, frozen log-probs [rows, T] or None) of the training sequences, row group by
        row group, reading only the ``indices`` column (and the weights when there are
        any): a pass over the data before training (the scorable fraction per sequence)
        that never reads the token ids."""
        for k, rows in enumerate(self._train_rows):
            if not len(rows):
                continue
            f, g = self._groups[k]
            with self.open_file(self.files[f]) as fh:
                table = pq.ParquetFile(fh).read_row_group(g, columns=["seq_id", "indices"])
            part = table.take(pa.array(rows))
            spans = [[(int(a), int(b)) for a, b in units]
                     for units in part.column("indices").to_pylist()]
            lp = None
            if self._weights_index is not None:
                lp = np.stack(self._load_weights(part.column("seq_id").to_numpy())[0])
            yield spans, lp

    def sequence_length(self) -> int:
        """Tokens per sequence (of the first training sequence; packing makes all alike)."""
        k = next(k for k, rows in enumerate(self._train_rows) if len(rows))
        f, g = self._groups[k]
        with self.open_file(self.files[f]) as fh:
            table = pq.ParquetFile(fh).read_row_group(g, columns=["input_ids"])
        return len(table.column(0)[int(self._train_rows[k][0])])

    def heldout(self) -> Iterator[tuple[int, np.ndarray, list[tuple[int, int]]]]:
        """(seq_id, input_ids, spans) of each held-out sequence, row group by row group (one
        in memory at a time), by seq_id inside each."""
        for k, rows in enumerate(self._heldout_rows):
            if not len(rows):
                continue
            part = self._read_group(k, rows)
            ids = list_values(part.column("input_ids"))
            for s, row, units in zip(part.column("seq_id").to_pylist(), ids,
                                     part.column("indices").to_pylist(), strict=True):
                yield int(s), row.astype(np.int64), [(int(a), int(b)) for a, b in units]


def _batch(rows: list[tuple]) -> PackedBatch:
    """A PackedBatch of copied rows (input_ids, spans, logp_short, full_context)."""
    ids = torch.from_numpy(np.stack([r[0] for r in rows]).astype(np.int64))
    lp = fc = None
    if rows[0][2] is not None:
        lp = torch.from_numpy(np.stack([r[2] for r in rows]).astype(np.float32))
        fc = torch.from_numpy(np.stack([r[3] for r in rows]).astype(bool))
    return PackedBatch(ids, [r[1] for r in rows], lp, fc)

