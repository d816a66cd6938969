"""Packing units into fixed-length sequences (EntropyLong step 4).

A *unit* is a root document with its verified chunks: ``[C_pi(1); ...; C_pi(m); D]``, the
chunks in a seeded random order (shuffling beats anchor order) and the document last. Units
are packed into sequences of exactly ``target`` tokens by best-fit decreasing; each sequence
records its unit spans (ProLong's ``indices``: attention allowed inside a span, masked
between spans) and its padding, which is never silent.

Oversize policy: a unit longer than ``target`` loses chunks from the front (the first in the
shuffled order) until it fits; if the document alone is longer than ``target`` the unit is
not packed and is reported as oversize.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Unit:
    unit_id: str  # the root document id
    segment_ids: tuple[str, ...]  # chunk ids in order, then the root doc id
    segments: tuple[np.ndarray, ...]  # token ids of each segment

    @property
    def length(self) -> int:
        return int(sum(len(s) for s in self.segments))


def _unit_seed(seed: int, unit_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}:{unit_id}".encode(), digest_size=8)
                          .digest(), "big")


def build_unit(root_id: str, root_tokens: np.ndarray,
               chunks: Sequence[tuple[str, np.ndarray]], seed: int) -> Unit:
    """The unit of a root: its chunks shuffled (seeded per root), the root last."""
    order = sorted(chunks, key=lambda c: c[0])  # input order must not matter
    random.Random(_unit_seed(seed, root_id)).shuffle(order)
    return Unit(root_id, tuple(c[0] for c in order) + (root_id,),
                tuple(np.asarray(c[1], np.int32) for c in order)
                + (np.asarray(root_tokens, np.int32),))


def fit_unit(unit: Unit, target: int) -> Unit | None:
    """Apply the oversize policy: drop leading chunks until it fits, or None if it cannot."""
    ids, segs = list(unit.segment_ids), list(unit.segments)
    total = unit.length
    while total > target and len(segs) > 1:
        total -= len(segs[0])
        ids.pop(0)
        segs.pop(0)
    if total > target:
        return None
    return Unit(unit.unit_id, tuple(ids), tuple(segs))


def best_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Bins of item indices: longest items first, each into the fullest bin it fits.

    Ties are broken by item index, so the result depends only on the lengths.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    free: list[tuple[int, int]] = []  # (remaining capacity, bin index), sorted
    bins: list[list[int]] = []
    for i in order:
        n = lengths[i]
        if n > capacity:
            raise ValueError(f"item {i} has length {n} > capacity {capacity}")
        pos = bisect.bisect_left(free, (n, -1))
        if pos < len(free):
            room, b = free.pop(pos)
        else:
            room, b = capacity, len(bins)
            bins.append([])
        bins[b].append(i)
        if room - n > 0:
            bisect.insort(free, (room - n, b))
    return bins


@dataclass
class Packed:
    input_ids: np.ndarray  # int32 [sequences, target]
    indices: list[list[tuple[int, int]]]  # unit spans per sequence, [start, end)
    unit_ids: list[list[str]]  # unit (root doc) per span
    n_pad: np.ndarray  # int64 [sequences]: padding tokens at the end of each sequence


def assemble(units: Sequence[Unit], bins: Sequence[Sequence[int]], target: int,
             pad_id: int) -> Packed:
    """Write each bin's units, in bin order, into one row of exactly ``target`` tokens."""
    out = np.full((len(bins), target), pad_id, dtype=np.int32)
    indices, unit_ids = [], []
    n_pad = np.zeros(len(bins), dtype=np.int64)
    for row, members in enumerate(bins):
        pos = 0
        spans, ids = [], []
        for u in members:
            start = pos
            for seg in units[u].segments:
                out[row, pos:pos + len(seg)] = seg
                pos += len(seg)
            spans.append((start, pos))
            ids.append(units[u].unit_id)
        if pos > target:
            raise ValueError(f"sequence {row} overflows: {pos} > {target}")
        n_pad[row] = target - pos
        indices.append(spans)
        unit_ids.append(ids)
    return Packed(out, indices, unit_ids, n_pad)


def packed_tables(packed: Packed, units: Sequence[Unit]) -> tuple[dict, dict]:
    """Column dicts of the sequences table and the manifest (schemas in lakehouse.tables)."""
    by_id = {u.unit_id: u for u in units}
    seqs = {"seq_id": list(range(len(packed.indices))),
            "input_ids": list(packed.input_ids),
            "indices": [[list(span) for span in spans] for spans in packed.indices],
            "n_pad": packed.n_pad.tolist()}
    man: dict[str, list] = {k: [] for k in ("seq_id", "unit_index", "root_doc_id",
                                            "chunk_ids", "token_start", "token_end",
                                            "root_start")}
    for seq, (spans, ids) in enumerate(zip(packed.indices, packed.unit_ids, strict=True)):
        for i, ((a, b), uid) in enumerate(zip(spans, ids, strict=True)):
            unit = by_id[uid]
            man["seq_id"].append(seq)
            man["unit_index"].append(i)
            man["root_doc_id"].append(uid)
            man["chunk_ids"].append(list(unit.segment_ids[:-1]))
            man["token_start"].append(a)
            man["token_end"].append(b)
            man["root_start"].append(b - len(unit.segments[-1]))
    return seqs, man


def baseline_units(doc_ids: Sequence[str], token_lists: Sequence[Sequence[int]], budget: int,
                   max_length: int, seed: int) -> tuple[list[Unit], int, int]:
    """Whole random documents, no chunks, until ``budget`` tokens: the plain-concatenation
    baseline. Returns (units, tokens, passes over the documents).

    Documents come in a seeded random order; when the corpus holds fewer tokens than the
    budget (EntropyLong reuses a chunk in many units, so its dataset can outgrow the corpus)
    a fresh order starts another pass, as a trainer would see repeated data. Documents
    longer than ``max_length`` are cut to it. Unit ids carry the pass, so they stay unique.
    """
    rng = np.random.default_rng(seed)
    units: list[Unit] = []
    total, passes = 0, 0
    n = len(doc_ids)
    while total < budget and n:
        passes += 1
        for i in rng.permutation(n):
            if total >= budget:
                break
            ids = np.asarray(token_lists[int(i)][:max_length], np.int32)
            if ids.size == 0:
                continue
            uid = doc_ids[int(i)] if passes == 1 else f"{doc_ids[int(i)]}#{passes}"
            units.append(build_unit(uid, ids, [], seed))
            total += int(ids.size)
        if total == 0:
            break  # nothing but empty documents
    return units, total, passes
