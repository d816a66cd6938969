"""Measures of the pipeline against the `planted` ground truth (pure table math).

Ground truth comes as character spans; these functions map them onto each root's tokens and
ask two questions: are the planted tokens picked as anchors more often than other tokens, and
does retrieval return a chunk of the true source document for anchors inside planted spans.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PlantedSpan:
    root_doc_id: str
    source_doc_id: str
    kind: str
    token_start: int
    token_end: int


def planted_token_spans(truth: Iterable[Mapping], offsets: Mapping[str, tuple[np.ndarray,
                                                                            np.ndarray]]
                        ) -> list[PlantedSpan]:
    """Token spans of the ground-truth rows, from each root's (char_start, char_end) arrays."""
    out = []
    for row in truth:
        starts, ends = offsets[row["root_doc_id"]]
        idx = np.flatnonzero((ends > row["char_start"]) & (starts < row["char_end"]))
        if idx.size:
            out.append(PlantedSpan(row["root_doc_id"], row["source_doc_id"], row["kind"],
                                   int(idx[0]), int(idx[-1]) + 1))
    return out


@dataclass(frozen=True)
class Enrichment:
    planted_tokens: int
    planted_anchor_rate: float
    other_tokens: int
    other_anchor_rate: float
    spans: int
    spans_with_anchor: int

    @property
    def ratio(self) -> float:
        return self.planted_anchor_rate / self.other_anchor_rate if self.other_anchor_rate \
            else float("inf")


def anchor_enrichment(spans: list[PlantedSpan], anchors: Mapping[str, np.ndarray],
                      n_tokens: Mapping[str, int]) -> Enrichment:
    """Anchor rate inside planted spans against the rate on the roots' other scored tokens."""
    p_tok = p_anc = o_tok = o_anc = with_anchor = 0
    by_root: dict[str, list[PlantedSpan]] = {}
    for s in spans:
        by_root.setdefault(s.root_doc_id, []).append(s)
    for root, root_spans in by_root.items():
        n = n_tokens[root]
        is_anchor = np.zeros(n, bool)
        is_anchor[anchors.get(root, np.zeros(0, np.int64))] = True
        planted = np.zeros(n, bool)
        for s in root_spans:
            planted[s.token_start:s.token_end] = True
            with_anchor += bool(is_anchor[s.token_start:s.token_end].any())
        planted[0] = False  # position 0 is never scored
        other = ~planted
        other[0] = False
        p_tok += int(planted.sum())
        p_anc += int(is_anchor[planted].sum())
        o_tok += int(other.sum())
        o_anc += int(is_anchor[other].sum())
    return Enrichment(p_tok, p_anc / p_tok if p_tok else 0.0, o_tok,
                      o_anc / o_tok if o_tok else 0.0, len(spans), with_anchor)


def source_recall(spans: list[PlantedSpan],
                  candidates: Mapping[tuple[str, int], set[str]]) -> tuple[int, int]:
    """(anchors inside planted spans, of those whose candidates include the source document).

    ``candidates`` maps (root doc, anchor position) to the doc ids of its candidate chunks.
    """
    total = found = 0
    for s in spans:
        for (root, pos), docs in candidates.items():
            if root == s.root_doc_id and s.token_start <= pos < s.token_end:
                total += 1
                found += s.source_doc_id in docs
    return total, found


@dataclass(frozen=True)
class Quality:
    """What was kept, judged against the ground truth (the columns of the catalog view
    `planted_dependency_quality`): precision = true_kept / kept, recall = truth_found / truth.
    """

    truth: int  # true items (planted spans, or true (root, source) pairs)
    kept: int  # kept items that the ground truth can judge
    true_kept: int  # of those, the true ones
    truth_found: int  # true items with at least one true kept item

    @property
    def precision(self) -> float:
        return self.true_kept / self.kept if self.kept else float("nan")

    @property
    def recall(self) -> float:
        return self.truth_found / self.truth if self.truth else float("nan")


def pair_quality(truth: Iterable[tuple[str, str]], kept: Iterable[tuple[str, str]]
                 ) -> Quality:
    """Precision and recall of kept (root doc, chunk doc) pairs, counted once per pair.

    Only roots that appear in ``truth`` are judged: a kept pair of a root without ground truth
    says nothing about the planted dependencies.
    """
    true = set(truth)
    roots = {r for r, _ in true}
    found = {p for p in kept if p[0] in roots}
    hits = len(found & true)
    return Quality(len(true), len(found), hits, hits)


def span_quality(spans: list[PlantedSpan], kept: Iterable[tuple[str, int, str]]) -> Quality:
    """Precision/recall of kept (root doc, anchor position, chunk doc) rows at planted spans.

    Rows at positions no span covers are unlabelled and not judged; the same definition as
    the catalog view `planted_dependency_quality` (level 'span').
    """
    by_root: dict[str, list[PlantedSpan]] = {}
    for s in spans:
        by_root.setdefault(s.root_doc_id, []).append(s)
    n = hit = 0
    found: set[tuple[str, int]] = set()
    for root, pos, chunk_doc in kept:
        for s in by_root.get(root, ()):
            if s.token_start <= pos < s.token_end:
                n += 1
                if chunk_doc == s.source_doc_id:
                    hit += 1
                    found.add((root, s.token_start))
    return Quality(len(spans), n, hit, len(found))


def planted_quality(truth: Sequence[Mapping], offsets: Mapping[str, tuple[np.ndarray,
                                                                           np.ndarray]],
                    rows: Sequence[Mapping], top: int) -> dict:
    """Precision/recall of verified_dependencies rows against planted ground truth.

    Two rules side by side (the verified flag, and the paper's ablation: the top ``top``
    candidates per anchor kept unverified) at two levels (planted spans, and (root, chunk
    document) pairs), as in the catalog view `planted_dependency_quality`. The roots judged
    are those of ``offsets`` (the documents of the shard, with or without rows: a root that
    kept nothing counts against recall); empty when none of them has ground truth.
    """
    roots = set(offsets)
    truth = [t for t in truth if t["root_doc_id"] in roots]
    if not truth:
        return {}
    spans = planted_token_spans(truth, offsets)
    pairs = {(t["root_doc_id"], t["source_doc_id"]) for t in truth}
    out: dict = {"planted_spans": len(spans), "planted_roots": len({t["root_doc_id"]
                                                                      for t in truth})}
    anchor_rows = [r for r in rows if r.get("origin", "anchor") == "anchor"]
    for rule, kept in (("verified", [r for r in rows if r["verified"] and r["mode"] == "on"]),
                       (f"top{top}_unverified", [r for r in anchor_rows if r["rank"] <= top])):
        sq = span_quality(spans, [(r["doc_id"], r["position"], r["chunk_doc_id"])
                                  for r in kept])
        pq = pair_quality(pairs, [(r["doc_id"], r["chunk_doc_id"]) for r in kept])
        out[f"planted_{rule}_span_precision"] = sq.precision
        out[f"planted_{rule}_span_recall"] = sq.recall
        out[f"planted_{rule}_pair_precision"] = pq.precision
        out[f"planted_{rule}_pair_recall"] = pq.recall
    return out


def kept_row_targets(truth: Sequence[Mapping], rows: Sequence[Mapping]) -> dict:
    """Where the kept rows of roots with ground truth point: their true source, another
    root, or any other document (other stories' sources, distractors, look-alikes)."""
    sources: dict[str, set[str]] = {}
    for t in truth:
        sources.setdefault(t["root_doc_id"], set()).add(t["source_doc_id"])
    counts = {"true_source": 0, "other_root": 0, "other_document": 0}
    for r in rows:
        if not r["verified"] or r["doc_id"] not in sources:
            continue
        if r["chunk_doc_id"] in sources[r["doc_id"]]:
            counts["true_source"] += 1
        elif r["chunk_doc_id"] in sources:
            counts["other_root"] += 1
        else:
            counts["other_document"] += 1
    out = {f"kept_to_{k}": v for k, v in counts.items()}
    out["kept_rows_of_planted_roots"] = sum(counts.values())
    return out
