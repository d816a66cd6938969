"""Measures of the pipeline against the `planted` ground truth (pure table math).

Ground truth comes as character spans; these functions map them onto each root's tokens and
ask two questions: are the planted tokens picked as anchors more often than other tokens, and
does retrieval return a chunk of the true source document for anchors inside planted spans.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
