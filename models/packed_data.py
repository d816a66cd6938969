"""Packed sequences in memory: the reference the streamed reader (models.streamed_data,
what the trainer and the evaluation read) is tested against, and small benchmarks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from models.training import PackedBatch


@dataclass
class PackedData:
    """Sequences of one packed dataset (rows in seq_id order) and their frozen scores."""

    seq_ids: np.ndarray  # [S]
    input_ids: np.ndarray  # [S, T] int64
    spans: list[list[tuple[int, int]]]
    logp_short: np.ndarray | None = None  # [S, T] float32
    full_context: np.ndarray | None = None  # [S, T] bool

    @classmethod
    def from_rows(cls, sequences: list[dict], weights: list[dict] | None = None
                  ) -> PackedData:
        """From the rows of sequences.parquet and (optionally) token_weights, joined by id."""
        seqs = sorted(sequences, key=lambda r: r["seq_id"])
        ids = np.asarray([r["input_ids"] for r in seqs], np.int64)
        spans = [[(int(a), int(b)) for a, b in r["indices"]] for r in seqs]
        seq_ids = np.asarray([r["seq_id"] for r in seqs], np.int64)
        if weights is None:
            return cls(seq_ids, ids, spans)
        by_id = {r["seq_id"]: r for r in weights}
        missing = [int(s) for s in seq_ids if s not in by_id]
        if missing:
            raise KeyError(f"token_weights has no row for sequences {missing[:5]}; "
                           "re-materialize token_weights after packed_dataset")
        lp = np.asarray([by_id[s]["logp_short"] for s in seq_ids], np.float32)
        fc = np.asarray([by_id[s]["full_context"] for s in seq_ids], bool)
        return cls(seq_ids, ids, spans, lp, fc)

    def __len__(self) -> int:
        return len(self.seq_ids)

    def split(self, heldout: int) -> tuple[PackedData, PackedData]:
        """(train, held out): the last ``heldout`` sequences are never trained on."""
        k = len(self) - min(heldout, max(len(self) - 1, 0))
        return self._take(slice(0, k)), self._take(slice(k, len(self)))

    def _take(self, sel: slice) -> PackedData:
        return PackedData(self.seq_ids[sel], self.input_ids[sel], self.spans[sel],
                          None if self.logp_short is None else self.logp_short[sel],
                          None if self.full_context is None else self.full_context[sel])

    def batch(self, idx: list[int]) -> PackedBatch:
        lp = fc = None
        if self.logp_short is not None:
            lp = torch.from_numpy(self.logp_short[idx])
            fc = torch.from_numpy(self.full_context[idx])
        return PackedBatch(torch.from_numpy(self.input_ids[idx]), [self.spans[i] for i in idx],
                           lp, fc)
