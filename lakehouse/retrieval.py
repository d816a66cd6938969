"""Candidate filtering for retrieval: never the root itself, never a near-copy of it.

Without this, verification would reward self-copying: a chunk of the root document (or of a
near-duplicate of it) trivially lowers the entropy of the root's own tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lakehouse.vector_index import Hits


@dataclass(frozen=True)
class Candidate:
    rank: int  # 1-based among the kept candidates
    chunk_id: str
    chunk_doc_id: str
    score: float  # cosine similarity of query and chunk


@dataclass(frozen=True)
class Filtered:
    candidates: list[Candidate]
    excluded_self: int
    excluded_near_dup: int


def filter_hits(root_doc_id: str, hits: Hits, root_vectors: np.ndarray, k: int,
                near_dup_cosine: float) -> Filtered:
    """Keep the best ``k`` hits that are neither the root's chunks nor near-copies of them.

    A hit is a near-copy when its cosine similarity to any chunk of the root exceeds
    ``near_dup_cosine``.
    """
    kept: list[Candidate] = []
    n_self = n_dup = 0
    if len(root_vectors) and len(hits.chunk_ids):
        dup_sim = (hits.vectors @ root_vectors.T).max(axis=1)
    else:
        dup_sim = np.full(len(hits.chunk_ids), -1.0, np.float32)
    for cid, did, score, sim in zip(hits.chunk_ids, hits.doc_ids, hits.scores, dup_sim,
                                    strict=True):
        if did == root_doc_id:
            n_self += 1
        elif sim > near_dup_cosine:
            n_dup += 1
        elif len(kept) < k:
            kept.append(Candidate(len(kept) + 1, cid, did, float(score)))
    return Filtered(kept, n_self, n_dup)
