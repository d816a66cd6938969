"""dI at distance: does a verified chunk still explain its anchor where packing put it?

Verification measures dI with the chunk right before the root (``[C; D]``). Packed, the
chunk sits ``distance`` tokens before the anchor, with other chunks and roots in between (in
the sequence layout, other roots' chunks too). This re-scores the anchor on the assembled
sequence itself: the context is the tokens of the attention span up to the anchor, cut to
the scorer's window (the chunk must lie inside it), and the chunk's contribution is

    dI_at_distance = (H_without - H_with) / H_without,

H_with the anchor's entropy on that context and H_without on the same context with the
chunk's tokens taken out (everything else, other chunks included, kept in place). It is
the paper's dI with the rest of the sequence as the background, so it is at most the
adjacent dI when another chunk of the same root explains the same anchor, and it falls
where the scorer cannot use context that far back (a model trained at 8K keeps little of a
chunk 7K tokens away). A control separates the two: ``h_moved`` is the entropy on the same
context with the chunk moved from its place to right before its root (every other token
kept, so the context has the same length and content), giving ``delta_i_moved``. Distance
costs the difference between ``delta_i_moved`` and ``delta_i``; what the rest of the
sequence costs (other documents in between, other copies of the information) is the
difference between the adjacent dI of verification and ``delta_i_moved``.
Dependencies whose chunk starts before the window are not scored
(``beyond_window``): the scorer cannot hold them, which is what training at the packed
length is for.

Passes are shared: one pass over the context with the chunk serves every sampled anchor of
that context; one pass without it serves every sampled anchor of that (context, chunk).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # the settings are imported by the config, which must not import torch
    from models.scoring import ScoringConfig


class DistanceCheckSettings(BaseModel):
    """The `distance_check` asset's sample (the config's ``distance_check`` section)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    samples: int = Field(64, ge=0)  # packed dependencies re-scored per dataset (seeded draw)
    seed: int = 0  # which dependencies are drawn
    # context tokens fed, anchor included (and a BOS); 0: the scorer's whole window
    # (max_position_embeddings, not scoring.window's batching size)
    window: int = Field(0, ge=0)


@dataclass(frozen=True)
class PackedDependency:
    """One dependency in a packed sequence: the chunk ``[chunk_start, chunk_end)`` and the
    anchor token ``anchor``, inside the attention span that starts at ``span_start``."""

    row: int  # index of its sequence in the ``sequences`` given
    span_start: int
    chunk_start: int
    chunk_end: int
    anchor: int
    root_start: int = -1  # where the anchor's root begins (-1: unknown, no moved control)


def context_start(dep: PackedDependency, window: int, content_start: int) -> int | None:
    """First token of the context: ``window`` tokens ending at the anchor, not before the
    span's content; None when the chunk does not fit (its start is cut off)."""
    start = max(content_start, dep.anchor + 1 - window)
    return start if start <= dep.chunk_start else None


def sample(eligible: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Indices of ``k`` eligible items drawn without replacement (seeded), ascending."""
    idx = np.flatnonzero(eligible)
    if k >= idx.size:
        return idx
    return np.sort(np.random.default_rng(seed).choice(idx, size=k, replace=False))


def distance_check(model, sequences: Sequence[np.ndarray], deps: Sequence[PackedDependency],
                   config: ScoringConfig | None = None, window: int = 0) -> dict:
    """H with and without the chunk at each dependency's anchor, on its packed context.

    ``sequences``: token ids of the packed rows (a leading BOS of a span equal to
    ``config.bos_token_id`` is dropped, as the scorer prepends its own; ``config`` None:
    the kernel's defaults). ``window``: tokens of context, anchor included, besides the
    scorer's BOS (0, or more than fits: the scorer's window, ``config.window`` or the
    model's, less the BOS). Returns per dependency
    ``h_with``, ``h_without``, ``h_moved``, the three NLLs, ``delta_i`` and
    ``delta_i_moved`` (NaN where not scored; moved: where ``root_start`` is known),
    ``context_start``, ``context_tokens`` and ``status`` (ok | beyond_window | no_context:
    nothing precedes the anchor once the chunk is out and there is no BOS), and ``tokens``,
    the tokens forwarded.
    """
    from models.scoring import DEFAULT_SCORING, model_window, score_positions

    config = config or DEFAULT_SCORING
    bos = config.bos_token_id
    lead = int(bos is not None)
    fits = (config.window or model_window(model)) - lead
    window = min(window or fits, fits)
    n = len(deps)
    out = {k: np.full(n, np.nan, np.float32) for k in (
        "h_with", "h_without", "h_moved", "nll_with", "nll_without", "nll_moved", "delta_i",
        "delta_i_moved")}
    out["context_start"] = np.full(n, -1, np.int64)
    out["context_tokens"] = np.zeros(n, np.int64)
    status = ["beyond_window"] * n
    with_groups: dict[tuple[int, int], list[int]] = {}
    without_groups: dict[tuple[int, int, int, int], list[int]] = {}
    moved_groups: dict[tuple[int, int, int, int, int], list[int]] = {}
    for i, d in enumerate(deps):
        row = sequences[d.row]
        content = d.span_start + int(lead and row[d.span_start] == bos)
        start = context_start(d, window, content)
        if start is None:
            continue
        out["context_start"][i] = start
        out["context_tokens"][i] = d.anchor + 1 - start
        if d.anchor - start - (d.chunk_end - d.chunk_start) < 1 - lead:
            status[i] = "no_context"
            continue
        status[i] = "ok"
        with_groups.setdefault((d.row, start), []).append(i)
        without_groups.setdefault((d.row, start, d.chunk_start, d.chunk_end), []).append(i)
        if d.chunk_end <= d.root_start <= d.anchor:
            moved_groups.setdefault((d.row, start, d.chunk_start, d.chunk_end, d.root_start),
                                    []).append(i)
    seqs, positions, targets = [], [], []
    for (r, start), members in sorted(with_groups.items()):
        last = max(deps[i].anchor for i in members)
        seqs.append(np.asarray(sequences[r][start:last + 1], np.int64))
        positions.append(np.array([deps[i].anchor - start for i in members]))
        targets.append(("with", members))
    for (r, start, c0, c1), members in sorted(without_groups.items()):
        last = max(deps[i].anchor for i in members)
        row = np.asarray(sequences[r], np.int64)
        seqs.append(np.concatenate([row[start:c0], row[c1:last + 1]]))
        positions.append(np.array([deps[i].anchor - start - (c1 - c0) for i in members]))
        targets.append(("without", members))
    for (r, start, c0, c1, r0), members in sorted(moved_groups.items()):
        last = max(deps[i].anchor for i in members)
        row = np.asarray(sequences[r], np.int64)
        seqs.append(np.concatenate([row[start:c0], row[c1:r0], row[c0:c1], row[r0:last + 1]]))
        positions.append(np.array([deps[i].anchor - start for i in members]))
        targets.append(("moved", members))
    if seqs:
        for (kind, members), s in zip(targets, score_positions(model, seqs, positions, config),
                                      strict=True):
            out[f"h_{kind}"][members] = s.entropy
            out[f"nll_{kind}"][members] = s.nll
    with np.errstate(divide="ignore", invalid="ignore"):
        out["delta_i"] = ((out["h_without"] - out["h_with"]) / out["h_without"]
                          ).astype(np.float32)
        out["delta_i_moved"] = ((out["h_without"] - out["h_moved"]) / out["h_without"]
                                ).astype(np.float32)
    out["status"] = status
    out["tokens"] = int(sum(len(s) for s in seqs))
    return out


def summary(delta_adjacent: np.ndarray, delta_at_distance: np.ndarray,
            distance: np.ndarray, delta_moved: np.ndarray | None = None) -> dict:
    """Means and medians of dI adjacent, at distance (and moved next to the root) over the
    scored dependencies, the share still positive at distance, and the distances."""
    ok = np.isfinite(delta_at_distance) & np.isfinite(delta_adjacent)
    if not ok.any():
        return {"scored": 0}
    a, d, x = delta_adjacent[ok], delta_at_distance[ok], distance[ok]
    extra = {}
    if delta_moved is not None and np.isfinite(delta_moved[ok]).any():
        m = delta_moved[ok][np.isfinite(delta_moved[ok])]
        extra = {"delta_i_moved_mean": round(float(m.mean()), 4),
                 "delta_i_moved_median": round(float(np.median(m)), 4)}
    return {"scored": int(ok.sum()),
            "delta_i_adjacent_mean": round(float(a.mean()), 4),
            "delta_i_at_distance_mean": round(float(d.mean()), 4),
            "delta_i_adjacent_median": round(float(np.median(a)), 4),
            "delta_i_at_distance_median": round(float(np.median(d)), 4),
            "share_positive_at_distance": round(float((d > 0).mean()), 4),
            "distance_median": float(np.median(x)), "distance_max": int(x.max()), **extra}
