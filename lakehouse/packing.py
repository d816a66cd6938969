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

Layouts (``packing.layout``):

- ``unit`` (the default): each unit is one attention span, so the longest dependency a model
  sees is one unit long (a few K tokens at most).
- ``sequence``: a whole packed sequence is one attention span holding several roots, so a
  chunk and the anchor it explains can lie anywhere in the target length. Roots are grouped
  into sequences exactly as in the unit layout (best-fit decreasing of whole units by their
  length), then every segment of the sequence's units (all chunks of all its roots, and the
  roots) is given a slot by one seeded random permutation; each unit's segments then take
  that unit's slots in the unit's own order, so its root takes the last of them. The result
  is a uniform draw among the orders in which every root follows all of its own chunks:
  roots spread over the sequence, each after its last chunk, and the chunks of different
  roots interleave. A chunk verified for two roots of one sequence is written once per
  root, as in the unit layout. BOS: one at the sequence start (the span starts as a
  sequence does; the scorer never saw a BOS inside a text), none per root.

Either way each verified dependency (root, chunk, anchor) gets its distance in the packed
sequence, anchor position minus the chunk's first token (``dependency_table``).
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

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
    # unit: one attention span per root's unit (chunks shuffled, root last); sequence: one
    # span per sequence, the chunks of all its roots shuffled over it, each root after its
    # own chunks, so dependencies spread over the whole target length.
    layout: Literal["unit", "sequence"] = "unit"


DISTANCE_MARKS = (1024, 4096, 32768)  # "share beyond" thresholds of the distance summary


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
    indices: list[list[tuple[int, int]]]  # attention spans per sequence, [start, end)
    unit_ids: list[list[str]]  # units (root doc ids) of each sequence, in bin order
    n_pad: np.ndarray  # int64 [sequences]: padding tokens at the end of each sequence
    layout: str = "unit"
    # per sequence, per unit: the attention span holding it, and the first token of each of
    # its segments (chunks in the unit's order, then the root)
    unit_spans: list[list[tuple[int, int]]] = field(default_factory=list)
    segment_starts: list[list[list[int]]] = field(default_factory=list)


def assemble(units: Sequence[Unit], bins: Sequence[Sequence[int]], target: int,
             pad_id: int) -> Packed:
    """Write each bin's units, in bin order, into one row of exactly ``target`` tokens."""
    out = np.full((len(bins), target), pad_id, dtype=np.int32)
    indices, unit_ids, starts = [], [], []
    n_pad = np.zeros(len(bins), dtype=np.int64)
    for row, members in enumerate(bins):
        pos = 0
        spans, ids, seg_starts = [], [], []
        for u in members:
            start = pos
            if units[u].bos is not None:
                out[row, pos] = units[u].bos
                pos += 1
            first = []
            for seg in units[u].segments:
                first.append(pos)
                out[row, pos:pos + len(seg)] = seg
                pos += len(seg)
            spans.append((start, pos))
            ids.append(units[u].unit_id)
            seg_starts.append(first)
        if pos > target:
            raise ValueError(f"sequence {row} overflows: {pos} > {target}")
        n_pad[row] = target - pos
        indices.append(spans)
        unit_ids.append(ids)
        starts.append(seg_starts)
    return Packed(out, indices, unit_ids, n_pad, "unit", indices, starts)


def arrange_sequence(units: Sequence[Unit], seed: int) -> list[tuple[int, int]]:
    """The order of the segments of one sequence-layout row: (unit, segment) pairs.

    One seeded permutation gives every segment a slot; each unit's segments take its slots
    in the unit's order (root last). Seeded by the units' ids, so a row's order does not
    depend on where in the dataset it lands.
    """
    items = [(u, k) for u, unit in enumerate(units) for k in range(len(unit.segments))]
    key = "|".join(sorted(u.unit_id for u in units))
    slot_of = np.random.default_rng(_unit_seed(seed, f"sequence:{key}")).permutation(len(items))
    order: list[tuple[int, int]] = [(0, 0)] * len(items)
    i = 0
    for u, unit in enumerate(units):
        n = len(unit.segments)
        for k, slot in enumerate(np.sort(slot_of[i:i + n]).tolist()):
            order[slot] = (u, k)
        i += n
    return order


def assemble_sequences(units: Sequence[Unit], bins: Sequence[Sequence[int]], target: int,
                       pad_id: int, seed: int, bos: int | None = None) -> Packed:
    """The sequence layout: each bin is one attention span [BOS; segments in
    ``arrange_sequence`` order], padded at the end. ``units`` carry no BOS of their own."""
    out = np.full((len(bins), target), pad_id, dtype=np.int32)
    indices, unit_ids, unit_spans, starts = [], [], [], []
    n_pad = np.zeros(len(bins), dtype=np.int64)
    for row, members in enumerate(bins):
        group = [units[u] for u in members]
        if any(u.bos is not None for u in group):
            raise ValueError("sequence layout: units carry no BOS (one per sequence)")
        pos = 0
        if bos is not None:
            out[row, 0] = bos
            pos = 1
        seg_starts = [[0] * len(u.segments) for u in group]
        for u, k in arrange_sequence(group, seed):
            seg = group[u].segments[k]
            seg_starts[u][k] = pos
            out[row, pos:pos + len(seg)] = seg
            pos += len(seg)
        if pos > target:
            raise ValueError(f"sequence {row} overflows: {pos} > {target}")
        n_pad[row] = target - pos
        indices.append([(0, pos)])
        unit_ids.append([u.unit_id for u in group])
        unit_spans.append([(0, pos)] * len(group))
        starts.append(seg_starts)
    return Packed(out, indices, unit_ids, n_pad, "sequence", unit_spans, starts)


def packed_tables(packed: Packed, units: Sequence[Unit]) -> tuple[dict, dict]:
    """Column dicts of the sequences table and the manifest (schemas in lakehouse.tables)."""
    by_id = {u.unit_id: u for u in units}
    seqs = {"seq_id": list(range(len(packed.indices))),
            "input_ids": list(packed.input_ids),
            "indices": [[list(span) for span in spans] for spans in packed.indices],
            "n_pad": packed.n_pad.tolist()}
    man: dict[str, list] = {f.name: [] for f in tables.PACKED_MANIFEST}
    for seq, (spans, ids, starts) in enumerate(zip(packed.unit_spans, packed.unit_ids,
                                                   packed.segment_starts, strict=True)):
        for i, ((a, b), uid, first) in enumerate(zip(spans, ids, starts, strict=True)):
            unit = by_id[uid]
            ends = [f + len(g) for f, g in zip(first, unit.segments, strict=True)]
            man["seq_id"].append(seq)
            man["unit_index"].append(i)
            man["root_doc_id"].append(uid)
            man["chunk_ids"].append(list(unit.segment_ids[:-1]))
            man["token_start"].append(a)
            man["token_end"].append(b)
            man["root_start"].append(first[-1])
            man["root_end"].append(ends[-1])
            man["chunk_starts"].append(first[:-1])
            man["chunk_ends"].append(ends[:-1])
            man["unit_tokens"].append(unit.length)
            man["layout"].append(packed.layout)
    return seqs, man


def dependency_table(manifest: pa.Table,
                     anchors: Mapping[tuple[str, str], Sequence[tuple[int, float]]]
                     ) -> pa.Table:
    """Every packed verified dependency with its distance (schema PACKED_DEPENDENCIES).

    ``anchors``: (root doc id, chunk id) -> [(anchor position in the root, dI)], the
    verified rows. The anchor's position in the sequence is the root's start plus its
    position in the root; ``distance`` is that minus the chunk's first token,
    ``distance_nearest`` minus the chunk's last token (both > 0: the chunk precedes its
    root). A chunk dropped by the oversize policy has no row.
    """
    cols: dict[str, list] = {f.name: [] for f in tables.PACKED_DEPENDENCIES}
    m = manifest.to_pydict()
    for i in range(manifest.num_rows):
        root, root_start = m["root_doc_id"][i], m["root_start"][i]
        for chunk, c0, c1 in zip(m["chunk_ids"][i], m["chunk_starts"][i], m["chunk_ends"][i],
                                 strict=True):
            for position, delta_i in sorted(anchors.get((root, chunk), ())):
                at = root_start + int(position)
                cols["seq_id"].append(m["seq_id"][i])
                cols["root_doc_id"].append(root)
                cols["chunk_id"].append(chunk)
                cols["position"].append(int(position))
                cols["anchor_position"].append(at)
                cols["chunk_start"].append(c0)
                cols["chunk_end"].append(c1)
                cols["distance"].append(at - c0)
                cols["distance_nearest"].append(at - c1 + 1)
                cols["span_start"].append(m["token_start"][i])
                cols["delta_i"].append(float(delta_i))
                cols["layout"].append(m["layout"][i])
    return pa.Table.from_pydict(cols, schema=tables.PACKED_DEPENDENCIES)


def distance_summary(distances: np.ndarray) -> dict:
    """Count, quantiles, max and the share beyond each of DISTANCE_MARKS (empty: count 0)."""
    d = np.asarray(distances, dtype=np.float64)
    if not d.size:
        return {"dependencies": 0}
    out = {"dependencies": int(d.size), "distance_median": float(np.median(d)),
           "distance_p90": float(np.quantile(d, 0.9)), "distance_max": int(d.max())}
    out.update({f"share_beyond_{k // 1024}k": float((d > k).mean()) for k in DISTANCE_MARKS})
    return out


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
    """A packed dataset as written: sequences, manifest and (EntropyLong) dependency
    tables, and what packing saw."""

    sequences: pa.Table
    manifest: pa.Table
    stats: dict
    dependencies: pa.Table | None = None


def _lead(layout: str, bos: int | None) -> tuple[int | None, int]:
    """(BOS each unit starts with, tokens each sequence reserves for its own BOS)."""
    if layout == "sequence":
        return None, int(bos is not None)
    if layout != "unit":
        raise ValueError(f"packing layout must be unit or sequence, got {layout!r}")
    return bos, 0


def _pack(units: list[Unit], target: int, pad_id: int, layout: str = "unit", seed: int = 0,
          bos: int | None = None) -> tuple[pa.Table, pa.Table, dict]:
    lead = _lead(layout, bos)[1]
    bins = best_fit_decreasing([u.length for u in units], target - lead)
    packed = assemble(units, bins, target, pad_id) if layout == "unit" else \
        assemble_sequences(units, bins, target, pad_id, seed, bos)
    seqs, man = packed_tables(packed, units)
    tokens = int(sum(u.length for u in units)) + lead * len(bins)
    stats = {"sequences": len(bins), "units": len(units), "tokens": tokens,
             "fill_rate": tokens / packed.input_ids.size if packed.input_ids.size else 0.0,
             "padding_tokens": int(packed.n_pad.sum()), "target_length": target,
             "layout": layout}
    return (pa.Table.from_pydict(seqs, schema=tables.PACKED_SEQUENCES),
            pa.Table.from_pydict(man, schema=tables.PACKED_MANIFEST), stats)


def pack_entropylong(chunks_of: Mapping[str, Sequence[str]], roots: Sequence[str],
                     root_tokens: Mapping[str, Sequence[int]],
                     chunk_tokens: Mapping[str, Sequence[int]], target: int, pad_id: int,
                     seed: int, include_roots_without_chunks: bool = False,
                     bos: int | None = None, layout: str = "unit",
                     anchors: Mapping[tuple[str, str], Sequence[tuple[int, float]]]
                     | None = None) -> PackedDataset:
    """The packing stage: per root a unit [BOS if the scorer used one; its verified chunks,
    shuffled; root], units that are too long trimmed from the front, packed by best-fit
    decreasing, in the given layout (module docstring). With ``anchors`` ((root, chunk) ->
    [(anchor position, dI)]) the dependencies table records each one's distance."""
    unit_bos, lead = _lead(layout, bos)
    if not include_roots_without_chunks:
        roots = [r for r in roots if chunks_of.get(r)]
    units, oversize, trimmed = [], 0, 0
    for r in sorted(roots):
        unit = build_unit(r, np.asarray(root_tokens[r], np.int32),
                          [(c, np.asarray(chunk_tokens[c], np.int32))
                           for c in sorted(set(chunks_of.get(r, ())))], seed, unit_bos)
        fitted = fit_unit(unit, target - lead)
        if fitted is None:
            oversize += 1
            continue
        trimmed += fitted.length < unit.length
        units.append(fitted)
    seqs, man, stats = _pack(units, target, pad_id, layout, seed, bos)
    stats.update(oversize_roots_skipped=oversize, units_trimmed=trimmed,
                 mean_chunks_per_unit=float(np.mean([len(u.segments) - 1 for u in units]))
                 if units else 0.0)
    deps = None
    if anchors is not None:
        deps = dependency_table(man, anchors)
        stats.update(distance_summary(deps["distance"].to_numpy()))
    return PackedDataset(seqs, man, stats, deps)


def pack_baseline(doc_ids: Sequence[str], token_lists: Sequence[Sequence[int]], budget: int,
                  target: int, pad_id: int, seed: int, bos: int | None = None,
                  layout: str = "unit") -> PackedDataset:
    """The plain-concatenation baseline: random whole documents up to ``budget`` tokens
    (the EntropyLong dataset's), packed the same way (each after a BOS when one is given;
    in the sequence layout, documents in a seeded order in one span, one BOS a sequence:
    plain concatenation with attention across documents)."""
    unit_bos, lead = _lead(layout, bos)
    units, total, passes = baseline_units(doc_ids, token_lists, budget, target - lead, seed,
                                          unit_bos)
    seqs, man, stats = _pack(units, target, pad_id, layout, seed, bos)
    stats.update(documents=len(units), target_tokens=budget, corpus_passes=passes)
    return PackedDataset(seqs, man, stats)


def dependencies_valid(dependencies: pa.Table, manifest: pa.Table) -> bool:
    """The distance check: each dependency's chunk ends before its anchor, starts inside
    the span of its root's unit, and the anchor lies in the root."""
    roots = {(s, r): (a, b, e) for s, r, a, b, e in zip(
        *(manifest[c].to_pylist() for c in ("seq_id", "root_doc_id", "token_start",
                                             "root_start", "root_end")), strict=True)}
    ok = True
    for s, r, at, c0, c1, dist in zip(*(dependencies[c].to_pylist() for c in (
            "seq_id", "root_doc_id", "anchor_position", "chunk_start", "chunk_end",
            "distance")), strict=True):
        span_start, root_start, root_end = roots[(s, r)]
        ok &= span_start <= c0 < c1 <= root_start <= at < root_end and dist == at - c0
    return bool(ok)


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
