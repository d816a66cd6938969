"""packing.layout: the unit layout as before (byte for byte), the sequence layout as one
attention span with each root after all its own chunks, and dependency distances that are
positions in `input_ids`."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pytest
import torch

from lakehouse.packing import (
    DISTANCE_MARKS,
    arrange_sequence,
    build_unit,
    dependencies_valid,
    distance_summary,
    pack_baseline,
    pack_entropylong,
    spans_exact,
)
from models.attention import unit_hidden, use_attention
from tests.conftest import make_tiny_llama

TARGET = 1024
VOCAB = 997  # the tiny model's; token ids are taken modulo it


def _fixed_input(seed: int = 11, roots: int = 40):
    """The input the unit layout's golden digests were taken on (before the layouts)."""
    rng = np.random.default_rng(seed)
    root_tokens = {f"r{i:02d}": rng.integers(1, 500, int(rng.integers(20, 200))).tolist()
                   for i in range(roots)}
    chunk_tokens = {f"c{j:03d}": rng.integers(1, 500, int(rng.integers(5, 80))).tolist()
                    for j in range(60)}
    chunks_of = {r: sorted({f"c{int(j):03d}" for j in rng.integers(0, 60, int(rng.integers(0, 6)))})
                 for r in root_tokens}
    return chunks_of, root_tokens, chunk_tokens


def _digest(t: pa.Table) -> str:
    h = hashlib.sha256()
    for c in t.column_names:
        h.update(c.encode())
        h.update(repr(t[c].to_pylist()).encode())
    return h.hexdigest()[:16]


OLD_MANIFEST = ["seq_id", "unit_index", "root_doc_id", "chunk_ids", "token_start", "token_end",
                "root_start"]


@pytest.mark.parametrize("bos, digests", [
    (None, ("9ca1a1760c5a3d2c", "ac587985eb7d2560", "0274309b06c7c76e", "330807308dc1a0c9")),
    (1, ("51d05ff98f1974be", "a71dff9d245607fd", "a0ad61fb5ba10424", "1f1ab2bcc3eca244")),
])
def test_unit_layout_is_byte_identical_to_the_code_before_layouts(bos, digests):
    # digests of the sequences and the manifest's columns of commit 5e40e9d on this input
    chunks_of, roots, chunks = _fixed_input()
    el = pack_entropylong(chunks_of, sorted(roots), roots, chunks, 512, 0, 3, bos=bos)
    base = pack_baseline(sorted(roots), [roots[r] for r in sorted(roots)], 6000, 512, 0, 3,
                         bos=bos)
    assert (_digest(el.sequences), _digest(el.manifest.select(OLD_MANIFEST)),
            _digest(base.sequences), _digest(base.manifest.select(OLD_MANIFEST))) == digests
    assert set(el.manifest["layout"].to_pylist()) == {"unit"}
    m = el.manifest.to_pydict()
    assert m["root_end"] == m["token_end"]  # the root closes its unit
    assert m["unit_tokens"] == [b - a for a, b in zip(m["token_start"], m["token_end"],
                                                       strict=True)]


def _distinct_input(seed: int = 0, roots: int = 30, shared: int = 6):
    """Roots and chunks with tokens no other segment has (so each can be found in a row);
    a few chunks are verified for two roots. Anchors: 1-3 per (root, chunk)."""
    rng = np.random.default_rng(seed)
    vocab = iter(rng.permutation(np.arange(10, 200_000)).tolist())
    root_tokens = {f"r{i:02d}": [next(vocab) for _ in range(int(rng.integers(30, 250)))]
                   for i in range(roots)}
    chunk_tokens = {f"c{j:03d}": [next(vocab) for _ in range(int(rng.integers(10, 90)))]
                    for j in range(80)}
    ids = sorted(chunk_tokens)
    chunks_of = {r: sorted({ids[int(j)] for j in rng.integers(0, 80, int(rng.integers(1, 6)))})
                 for r in root_tokens}
    for i in range(shared):  # chunk of r00..r05 also verified for the next root
        chunks_of[f"r{i + 1:02d}"] = sorted(set(chunks_of[f"r{i + 1:02d}"])
                                            | {chunks_of[f"r{i:02d}"][0]})
    anchors = {(r, c): [(int(t), 0.5) for t in sorted(set(
        rng.integers(0, len(root_tokens[r]), int(rng.integers(1, 4))).tolist()))]
               for r, cs in chunks_of.items() for c in cs}
    return chunks_of, root_tokens, chunk_tokens, anchors


def _pack(layout: str, seed: int = 3, bos: int | None = 7, data=None):
    chunks_of, roots, chunks, anchors = data or _distinct_input()
    return pack_entropylong(chunks_of, sorted(roots), roots, chunks, TARGET, 0, seed,
                            bos=bos, layout=layout, anchors=anchors)


def _find(row: np.ndarray, tokens: list[int]) -> list[int]:
    """Every start of ``tokens`` in ``row``."""
    hits = np.flatnonzero(row == tokens[0])
    return [int(h) for h in hits if row[h:h + len(tokens)].tolist() == tokens]


@pytest.mark.parametrize("bos", [None, 7])
def test_sequence_layout_one_span_each_root_after_its_chunks_every_token_once(bos):
    chunks_of, roots, chunks, anchors = data = _distinct_input()
    out = _pack("sequence", bos=bos, data=data)
    assert spans_exact(out.sequences, TARGET)
    man = out.manifest.to_pylist()
    seqs = out.sequences.to_pylist()
    assert {m["root_doc_id"] for m in man} == set(roots)  # everything fits: no trimming
    for s in seqs:
        (span,) = s["indices"]  # one attention span, from 0 to the padding
        assert span == [0, TARGET - s["n_pad"]]
        assert set(s["input_ids"][span[1]:]) <= {0}
        if bos is not None:
            assert s["input_ids"][0] == bos and s["input_ids"][1:span[1]].count(bos) == 0
    covered = {i: np.zeros(TARGET, bool) for i in range(len(seqs))}
    for m in man:
        row = np.asarray(seqs[m["seq_id"]]["input_ids"])
        assert sorted(m["chunk_ids"]) == sorted(chunks_of[m["root_doc_id"]])  # each once
        assert (m["token_start"], m["token_end"]) == tuple(seqs[m["seq_id"]]["indices"][0])
        assert row[m["root_start"]:m["root_end"]].tolist() == roots[m["root_doc_id"]]
        assert _find(row, roots[m["root_doc_id"]]) == [m["root_start"]]
        for c, a, b in zip(m["chunk_ids"], m["chunk_starts"], m["chunk_ends"], strict=True):
            assert row[a:b].tolist() == chunks[c] and a in _find(row, chunks[c])
            assert b <= m["root_start"]  # the root follows all of its own chunks
            covered[m["seq_id"]][a:b] = True
        covered[m["seq_id"]][m["root_start"]:m["root_end"]] = True
        assert m["unit_tokens"] == len(roots[m["root_doc_id"]]) + sum(
            len(chunks[c]) for c in m["chunk_ids"])
    for i, s in enumerate(seqs):  # segments tile the span after the BOS, no gap, no overlap
        lead = bos is not None
        assert covered[i][lead:s["indices"][0][1]].all() and not covered[i][:lead].any()
        assert covered[i].sum() == s["indices"][0][1] - lead
    total = sum(m["unit_tokens"] for m in man) + (bos is not None) * len(seqs)
    assert total + sum(s["n_pad"] for s in seqs) == len(seqs) * TARGET


@pytest.mark.parametrize("layout", ["unit", "sequence"])
def test_distances_in_the_dependency_table_are_positions_in_input_ids(layout):
    chunks_of, roots, chunks, anchors = data = _distinct_input()
    out = _pack(layout, data=data)
    deps = out.dependencies.to_pylist()
    assert len(deps) == sum(len(v) for v in anchors.values())  # nothing trimmed here
    assert dependencies_valid(out.dependencies, out.manifest)
    seqs = out.sequences.to_pylist()
    for d in deps:
        row = np.asarray(seqs[d["seq_id"]]["input_ids"])
        root, chunk = roots[d["root_doc_id"]], chunks[d["chunk_id"]]
        (root_at,) = _find(row, root)
        chunk_at = _find(row, chunk)
        assert d["chunk_start"] in chunk_at and d["chunk_end"] == d["chunk_start"] + len(chunk)
        assert d["anchor_position"] == root_at + d["position"]
        assert row[d["anchor_position"]] == root[d["position"]]
        assert d["distance"] == d["anchor_position"] - d["chunk_start"] > 0
        assert d["distance_nearest"] == d["anchor_position"] - d["chunk_end"] + 1 > 0
        spans = seqs[d["seq_id"]]["indices"]  # chunk and anchor in one attention span
        assert any(a <= d["chunk_start"] and d["anchor_position"] < b for a, b in spans)
        assert d["layout"] == layout
    summary = distance_summary(out.dependencies["distance"].to_numpy())
    assert summary["dependencies"] == len(deps)
    assert set(summary) >= {f"share_beyond_{k // 1024}k" for k in DISTANCE_MARKS}


def test_sequence_layout_spreads_distances_over_the_sequence():
    unit = _pack("unit").dependencies["distance"].to_numpy()
    seq = _pack("sequence").dependencies["distance"].to_numpy()
    longest_unit = max(m["unit_tokens"] for m in _pack("unit").manifest.to_pylist())
    assert unit.max() <= longest_unit  # bounded by one unit
    assert np.median(seq) > 2 * np.median(unit) and seq.max() > longest_unit


def test_sequence_layout_is_seeded_and_ignores_input_order():
    data = _distinct_input()
    a, b = _pack("sequence", data=data), _pack("sequence", data=data)
    assert a.sequences.equals(b.sequences) and a.manifest.equals(b.manifest)
    assert a.dependencies.equals(b.dependencies)
    chunks_of, roots, chunks, anchors = data
    shuffled = ({r: v[::-1] for r, v in reversed(chunks_of.items())},
                dict(reversed(roots.items())), chunks,
                {k: v[::-1] for k, v in reversed(anchors.items())})
    assert _pack("sequence", data=shuffled).sequences.equals(a.sequences)
    other = _pack("sequence", seed=4, data=data)
    assert not other.sequences.equals(a.sequences)
    assert spans_exact(other.sequences, TARGET)


def test_arrangement_is_a_uniform_draw_of_orders_with_roots_last():
    """Two units of one chunk each: the 4!/(2*2) = 6 valid orders come up equally often."""
    units = [build_unit("a", np.array([1]), [("a1", np.array([2]))], 0),
             build_unit("b", np.array([3]), [("b1", np.array([4]))], 0)]
    counts: dict[tuple, int] = {}
    for seed in range(3000):
        order = tuple(arrange_sequence(units, seed))
        assert order.index((0, 0)) < order.index((0, 1))
        assert order.index((1, 0)) < order.index((1, 1))
        counts[order] = counts.get(order, 0) + 1
    assert len(counts) == 6 and min(counts.values()) > 400


def test_baseline_sequence_layout_is_plain_concatenation_in_one_span():
    _, roots, _, _ = _distinct_input()
    ids = sorted(roots)
    out = pack_baseline(ids, [roots[r] for r in ids], 5000, TARGET, 0, 3, bos=7,
                        layout="sequence")
    assert spans_exact(out.sequences, TARGET)
    assert all(len(s) == 1 for s in out.sequences["indices"].to_pylist())
    rows = out.sequences["input_ids"].to_pylist()
    for m in out.manifest.to_pylist():
        doc = roots[m["root_doc_id"].split("#")[0]]  # "#2": the document's second pass
        assert rows[m["seq_id"]][m["root_start"]:m["root_end"]] == doc
        assert m["chunk_ids"] == []
    assert sum(m["unit_tokens"] for m in out.manifest.to_pylist()) >= 5000


def _logits(model, ids: np.ndarray, spans: list[tuple[int, int]]) -> torch.Tensor:
    with torch.no_grad():
        small = torch.as_tensor(ids % VOCAB, dtype=torch.long)[None]  # a small embedding
        hidden = unit_hidden(model.model, small, [spans])
        return model.lm_head(hidden)[0]


def test_training_attention_keeps_units_apart_and_the_sequence_layout_does_not():
    """Through the training attention path (models.attention, per-unit SDPA): in the unit
    layout a unit's logits do not change when another unit's tokens do; in the sequence
    layout a root's logits change when an earlier chunk (of another root) changes."""
    model = make_tiny_llama(vocab_size=VOCAB, max_positions=TARGET, init_std=0.3)
    use_attention(model, "unit_sdpa")
    chunks_of, roots, chunks, anchors = data = _distinct_input(roots=8)

    unit = _pack("unit", bos=None, data=data)
    row = np.asarray(unit.sequences["input_ids"][0].as_py())
    spans = [tuple(s) for s in unit.sequences["indices"][0].as_py()]
    assert len(spans) > 2
    changed = row.copy()
    changed[spans[0][0]:spans[0][1]] = (changed[spans[0][0]:spans[0][1]] + 1) % VOCAB
    before, after = _logits(model, row, spans), _logits(model, changed, spans)
    a, b = spans[1]
    torch.testing.assert_close(after[a:b], before[a:b], rtol=0, atol=0)
    assert not torch.allclose(after[spans[0][0]:spans[0][1]], before[spans[0][0]:spans[0][1]])

    seq = _pack("sequence", bos=None, data=data)
    row = np.asarray(seq.sequences["input_ids"][0].as_py())
    (span,) = [tuple(s) for s in seq.sequences["indices"][0].as_py()]
    man = [m for m in seq.manifest.to_pylist() if m["seq_id"] == 0]
    # the last root of the row, and a chunk of another root placed before it
    last = max(man, key=lambda m: m["root_start"])
    other = [(a, b) for m in man if m is not last
             for a, b in zip(m["chunk_starts"], m["chunk_ends"], strict=True)
             if b <= last["root_start"]]
    assert other
    changed = row.copy()
    c0, c1 = other[0]
    changed[c0:c1] = (changed[c0:c1] + 1) % VOCAB
    before, after = _logits(model, row, [span]), _logits(model, changed, [span])
    r0, r1 = last["root_start"], last["root_end"]
    assert not torch.allclose(after[r0:r1], before[r0:r1])
    torch.testing.assert_close(after[:c0], before[:c0], rtol=0, atol=0)  # causal
