"""Packing units into fixed-length sequences (EntropyLong step 4).

A *unit* is a root document with its verified chunks: ``[C_pi(1); ...; C_pi(m); D]``, the
chunks in a seeded random order (shuffling beats anchor order) and the document last. Units
are packed into sequences of exactly ``target`` tokens by best-fit decreasing; each sequence
records its unit spans (ProLong's ``indices``: attention allowed inside a span, masked
between spans) and its padding, which is never silent.

Oversize policy: a unit longer than ``target`` loses chunks from the front (the first in the
shuffled order) until it fits; if the document alone is longer than ``target`` the unit is
not packed and is reported as oversize.

BOS: when the scorer was run with a BOS token (``scoring.bos``, models.scoring), every unit
starts with it, ``[BOS; chunks; D]``: the model in training then sees each unit as the scorer
saw each scored sequence, and a unit masked from its neighbours starts as a sequence does.
Without one, nothing is added (SmolLM2 and GPT-2 are trained without a BOS).
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from lakehouse import tables


class PackingSettings(BaseModel):
    """How packed datasets are built and written (the config's ``packing`` section)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target_length: int = Field(131072, gt=0)  # tokens per packed sequence
    seed: int = 0  # chunk order within units
    include_roots_without_chunks: bool = False  # a root with no verified chunk: skip it
    mds: bool = False  # also export MDS for ProLong-style trainers (needs the `mds` extra)
    # Sequences are written as sequences/part-NNNNN.parquet, each at most this many MiB of
    # uncompressed rows (lakehouse.packed_files); also the MDS export's shard size limit.
    max_file_mb: float = Field(256.0, gt=0)
    # Rows per Parquet row group: what a streaming reader holds at once (a 131,072-token
    # row is 512 KiB of int32 ids).
    row_group_rows: int = Field(64, gt=0)


@dataclass(frozen=True)
class Unit:
    unit_id: str  # the root document id
    segment_ids: tuple[str, ...]  # chunk ids in order, then the root doc id
    segments: tuple[np.ndarray, ...]  # token ids of each segment
    bos: int | None = None  # written before the first segment (None: nothing)

    @property
    def length(self) -> int:
        return int(sum(len(s) for s in self.segments)) + (self.bos is not None)


def _unit_seed(seed: int, unit_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}:{unit_id}".encode(), digest_size=8)
                          .digest(), "big")


def build_unit(root_id: str, root_tokens: np.ndarray,
               chunks: Sequence[tuple[str, np.ndarray]], seed: int,
               bos: int | None = None) -> Unit:
    """The unit of a root: its chunks shuffled (seeded per root), the root last."""
    order = sorted(chunks, key=lambda c: c[0])  # input order must not matter
    random.Random(_unit_seed(seed, root_id)).shuffle(order)
    return Unit(root_id, tuple(c[0] for c in order) + (root_id,),
                tuple(np.asarray(c[1], np.int32) for c in order)
                + (np.asarray(root_tokens, np.int32),), bos)


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
    return Unit(unit.unit_id, tuple(ids), tuple(segs), unit.bos)


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
            if units[u].bos is not None:
                out[row, pos] = units[u].bos
                pos += 1
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
                   max_length: int, seed: int, bos: int | None = None
                   ) -> tuple[list[Unit], int, int]:
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
            ids = np.asarray(token_lists[int(i)][:max_length - (bos is not None)], np.int32)
            if ids.size == 0:
                continue
            uid = doc_ids[int(i)] if passes == 1 else f"{doc_ids[int(i)]}#{passes}"
            units.append(build_unit(uid, ids, [], seed, bos))
            total += units[-1].length
        if total == 0:
            break  # nothing but empty documents
    return units, total, passes


@dataclass
class PackedDataset:
    """A packed dataset as written: sequences and manifest tables, and what packing saw."""

    sequences: pa.Table
    manifest: pa.Table
    stats: dict


def _pack(units: list[Unit], target: int, pad_id: int) -> tuple[pa.Table, pa.Table, dict]:
    bins = best_fit_decreasing([u.length for u in units], target)
    packed = assemble(units, bins, target, pad_id)
    seqs, man = packed_tables(packed, units)
    tokens = int(sum(u.length for u in units))
    stats = {"sequences": len(bins), "units": len(units), "tokens": tokens,
             "fill_rate": tokens / packed.input_ids.size if packed.input_ids.size else 0.0,
             "padding_tokens": int(packed.n_pad.sum()), "target_length": target}
    return (pa.Table.from_pydict(seqs, schema=tables.PACKED_SEQUENCES),
            pa.Table.from_pydict(man, schema=tables.PACKED_MANIFEST), stats)


def pack_entropylong(chunks_of: Mapping[str, Sequence[str]], roots: Sequence[str],
                     root_tokens: Mapping[str, Sequence[int]],
                     chunk_tokens: Mapping[str, Sequence[int]], target: int, pad_id: int,
                     seed: int, include_roots_without_chunks: bool = False,
                     bos: int | None = None) -> PackedDataset:
    """The packing stage: per root a unit [BOS if the scorer used one; its verified chunks,
    shuffled; root], units that are too long trimmed from the front, packed by best-fit
    decreasing."""
    if not include_roots_without_chunks:
        roots = [r for r in roots if chunks_of.get(r)]
    units, oversize, trimmed = [], 0, 0
    for r in sorted(roots):
        unit = build_unit(r, np.asarray(root_tokens[r], np.int32),
                          [(c, np.asarray(chunk_tokens[c], np.int32))
                           for c in sorted(set(chunks_of.get(r, ())))], seed, bos)
        fitted = fit_unit(unit, target)
        if fitted is None:
            oversize += 1
            continue
        trimmed += fitted.length < unit.length
        units.append(fitted)
    seqs, man, stats = _pack(units, target, pad_id)
    stats.update(oversize_roots_skipped=oversize, units_trimmed=trimmed,
                 mean_chunks_per_unit=float(np.mean([len(u.segments) - 1 for u in units]))
                 if units else 0.0)
    return PackedDataset(seqs, man, stats)


def pack_baseline(doc_ids: Sequence[str], token_lists: Sequence[Sequence[int]], budget: int,
                  target: int, pad_id: int, seed: int, bos: int | None = None
                  ) -> PackedDataset:
    """The plain-concatenation baseline: random whole documents up to ``budget`` tokens
    (the EntropyLong dataset's), packed the same way (each after a BOS when one is given)."""
    units, total, passes = baseline_units(doc_ids, token_lists, budget, target, seed, bos)
    seqs, man, stats = _pack(units, target, pad_id)
    stats.update(documents=len(units), target_tokens=budget, corpus_passes=passes)
    return PackedDataset(seqs, man, stats)


def spans_exact(sequences: pa.Table, target: int) -> bool:
    """The packing check: every sequence is ``target`` tokens and its spans tile it up to
    the padding."""
    ok = True
    for ids, spans, pad in zip(*(sequences[c].to_pylist() for c in
                                 ("input_ids", "indices", "n_pad")), strict=True):
        ends = [0] + [b for _, b in spans]
        ok &= len(ids) == target
        ok &= all(a == ends[i] for i, (a, _) in enumerate(spans))
        ok &= ends[-1] + int(pad) == target
    return bool(ok)
