"""Verification decisions (EntropyLong step 3): what a chunk explains, and whether to keep it.

Two rules over the scores of one (document, chunk) pass (models.verification):

* ``delta_i`` (the paper): keep (anchor, chunk) when dI = (H - H') / H > epsilon at the
  anchor token.
* ``span`` (default): judge what the chunk explains over *entities*, not single tokens. An
  entity is a run of consecutive words each of which the scorer found surprising alone:
  its tokens' gold NLL sum to at least the ``word_quantile`` quantile of the per-word NLL
  of the roots being decided (thresholds are the scorer's own distribution on the corpus
  being run, resolved to nats and recorded as ``thresholds``: a word of 8 nats is rare for
  SmolLM2 on planted logs, common for it on Wikipedia, and rarer still for a larger model).
  A chunk explains an entity in one of two ways:

  - *outright*: it removes at least ``gain_factor`` word thresholds of NLL from the
    entity's *rare* words (a word is rare when at most ``rare_max_docs`` documents, or
    ``rare_max_share`` of the corpus, hold it) and at least ``min_relative_gain`` of their
    NLL (an invented name, a code: tens of nats), without raising the NLL of the rest of the
    root, and its root-wide NLL fall is at least ``root_floor`` of the root's best
    candidate's;
  - *as the root's best explainer* (``priming: root``): its NLL fall over the root's tokens
    it does not copy is positive and within ``root_comparative`` of the best candidate of
    the same root, and it removes the weaker ``root_gain_factor`` / ``root_relative_gain``
    of the entity's NLL (a real name the scorer half knows: a few nats).

  Why the root decides on real text: any chunk holding the entity's surface word cuts that
  word's NLL, whatever it means (a tennis report cuts Apollo 11's "Woodruff" by more nats
  than Apollo 11's own article), and the same pass scores every other token of the root:
  the chunk that explains the root lowers them, one that merely mentions the word does not
  (bench.realtext). Among the chunks that explain the same entity, and among a root's
  chunks by their strongest entity, only those removing at least ``comparative`` of the
  best are kept: a chunk whose names share sub-words with the answer removes a fraction of
  it, and is not kept beside the chunk that gives it.

  A pass with such an entity is a dependency; in it, weaker entities (words at the
  ``secondary_quantile``, ``secondary_gain_factor`` of that threshold removed: a year, a
  short code) are kept too, as the same source explains them.
  Why entities: on free prose the per-token rule passes same-topic look-alikes at most
  facts (they share the template's words and the names' sub-words, so *some* token's
  entropy falls by 40%), and a true source also lowers 13-46% of ordinary tokens by that
  much. Reading every position of the pass, not only anchors, also finds entities no anchor
  landed on, once any anchor of the document retrieved the chunk. Rare words: a chunk that
  shares a template or a topic with the root explains the template's phrases ("nothing
  beats mushroom stew") by as many nats as a name; such phrases are in many documents.

Copies (lakehouse.copies) are classified on every row and dropped by default
(``copies: drop``): verbatim context or an anchor inside recurring text is the same text,
not a dependency. ``decide`` builds the verified_dependencies table, its statistics
(NaN-safe), planted quality when ground truth is given, and a Markdown sample of kept rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from lakehouse import tables
from lakehouse.anchors import word_ids
from lakehouse.copies import COPY, INFORMATIVE, context_copied, copied_positions
from lakehouse.recurring import normalize_term, unit_hash


def relative_gain(h_before: np.ndarray, h_after: np.ndarray) -> np.ndarray:
    """dI = (H - H') / H; NaN where H is 0 (no uncertainty to explain) or not finite."""
    h = np.asarray(h_before, np.float64)
    h2 = np.asarray(h_after, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        di = (h - h2) / h
    di[~np.isfinite(di) | (h <= 0)] = np.nan
    return di.astype(np.float32)


def verified(di: np.ndarray, epsilon: float, nll_before: np.ndarray | None = None,
             nll_after: np.ndarray | None = None, correctness_aware: bool = False
             ) -> np.ndarray:
    """dI > epsilon; with ``correctness_aware`` the gold token's NLL must also fall.

    Entropy can fall while the model becomes confidently wrong; the correctness-aware rule
    rejects those chunks.
    """
    keep = np.nan_to_num(np.asarray(di, np.float64), nan=-np.inf) > epsilon
    if correctness_aware:
        if nll_before is None or nll_after is None:
            raise ValueError("correctness_aware needs nll_before and nll_after")
        keep &= np.asarray(nll_after) < np.asarray(nll_before)
    return keep


class DecisionSettings(BaseModel):
    """The `verification` section's decision settings (models.settings.VerifySettings
    holds where H' is read)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["on", "off"] = "on"  # off: keep candidates unverified (paper's ablation)
    rule: Literal["span", "delta_i"] = "span"  # delta_i: the paper's dI > epsilon
    epsilon: float = Field(0.4, ge=0)  # delta_i rule: keep when dI > epsilon
    correctness_aware: bool = False  # delta_i rule: also require the gold NLL to fall
    off_keep_top: int = Field(1, gt=0)  # mode off: candidates kept per anchor, by rank
    # span rule thresholds, relative to the scorer's own distribution: quantiles of the NLL
    # of every word of the roots being decided (one root shard), resolved to nats per run
    # and recorded in the stage's metadata (``thresholds``)
    word_quantile: float = Field(0.9, gt=0, lt=1)  # an entity word is this surprising alone
    gain_factor: float = Field(2.0, ge=0)  # explained outright: the chunk removes this many
    # entity-word thresholds of NLL from the entity's rare words ...
    min_relative_gain: float = Field(0.5, ge=0, le=1)  # ... and this share of their NLL
    secondary_quantile: float = Field(0.6, gt=0, lt=1)  # in an accepted pass, weaker
    secondary_gain_factor: float = Field(1.0, ge=0)  # entities (a year) at these thresholds
    priming: Literal["root", "rest", "off"] = "root"  # rest: an entity explained outright
    # counts only when the chunk does not raise the NLL of the rest of the root; root: that,
    # and the root's best explainer also counts at the weaker root_* bars (bench.realtext);
    # off: neither
    root_comparative: float = Field(0.8, ge=0, le=1)  # the root's best explainer: a chunk
    # whose root-wide NLL fall is positive and at least this share of the root's best ...
    root_floor: float = Field(0.5, ge=0, le=1)  # priming root: a chunk explaining an
    # entity outright still needs this share of the root's best root-wide NLL fall
    root_gain_factor: float = Field(0.25, ge=0)  # ... explains an entity when it removes
    # this many entity-word thresholds ...
    root_relative_gain: float = Field(0.25, ge=0, le=1)  # ... and this share of its NLL
    comparative: float = Field(0.5, ge=0, le=1)  # an entity is kept from a chunk only when
    # it removes at least this share of what the root's best candidate removes from it
    rare_max_docs: int = Field(5, ge=1)  # span rule: a word in at most this many documents
    rare_max_share: float = Field(0.1, ge=0, le=1)  # ... or this share of them is rare
    copies: Literal["drop", "keep"] = "drop"  # copy rows: never kept, or kept as they pass
    copy_context: int = Field(8, ge=0)  # k: tokens before the anchor that make a copy
    samples: int = Field(12, ge=0)  # rows in the Markdown sample of kept dependencies


DEFAULT_DECISION = DecisionSettings()


class PassLike(Protocol):
    """One (document, chunk) pass (models.verification.PassScores)."""

    doc_id: str
    chunk_id: str
    positions: np.ndarray
    h: np.ndarray
    nll: np.ndarray
    h_prime: np.ndarray
    nll_prime: np.ndarray
    context_start: np.ndarray


@dataclass(frozen=True)
class Entity:
    start: int  # token span [start, end) in the document
    end: int
    head: int  # the token whose NLL the chunk cut most
    gain: float  # nats of NLL removed over the entity
    relative: float  # gain / the entity's NLL alone
    rest: float = float("nan")  # nats removed over the rest of the root (may be < 0)


def entities(nll: np.ndarray, nll_prime: np.ndarray, words: np.ndarray,
             min_word_nll: float, rare: np.ndarray | None = None) -> list[Entity]:
    """Runs of consecutive surprising words with what the chunk removed from their NLL.

    ``nll``/``nll_prime`` span the document (NaN where not read); a word is surprising when
    its read tokens' NLL sum to ``min_word_nll`` or more. With ``rare`` (bool per word),
    gain and relative gain count the rare words of the entity only.
    """
    g = np.asarray(nll, np.float64)
    g2 = np.asarray(nll_prime, np.float64)
    read = np.isfinite(g) & np.isfinite(g2)
    if not read.any():
        return []
    n_words = int(words.max()) + 1
    s = np.bincount(words, weights=np.where(read, g, 0.0), minlength=n_words)
    f = np.bincount(words, weights=np.where(read, g - g2, 0.0), minlength=n_words)
    has = np.bincount(words, weights=read.astype(np.float64), minlength=n_words) > 0
    ok = has & (s >= min_word_nll)
    first = np.searchsorted(words, np.arange(n_words), side="left")
    last = np.searchsorted(words, np.arange(n_words), side="right")
    fall = np.where(read, g - g2, -np.inf)
    out, k = [], 0
    while k < n_words:
        if not ok[k]:
            k += 1
            continue
        e = k
        while e + 1 < n_words and ok[e + 1]:
            e += 1
        a, b = int(first[k]), int(last[e])
        sel = slice(k, e + 1)
        use = np.ones(e + 1 - k, bool) if rare is None else np.asarray(rare[sel], bool)
        gain, total = float(f[sel][use].sum()), float(s[sel][use].sum())
        out.append(Entity(a, b, a + int(np.argmax(fall[a:b])), gain,
                          gain / total if total > 0 else 0.0,
                          float(f.sum() - f[sel].sum())))
        k = e + 1
    return out


@dataclass(frozen=True)
class Thresholds:
    """The span rule's thresholds in nats, resolved on the roots being decided."""

    word_nll: float
    gain: float
    secondary_nll: float
    secondary_gain: float
    words: int  # words the quantiles were taken over
    root_gain: float = float("inf")  # the root's best explainer's entity bar

    def as_dict(self) -> dict:
        return {"word_nll": self.word_nll, "gain": self.gain,
                "secondary_nll": self.secondary_nll, "secondary_gain": self.secondary_gain,
                "root_gain": self.root_gain, "words": self.words}


def shard_thresholds(passes: Sequence[PassLike], words_of: Mapping[str, np.ndarray],
                     settings: DecisionSettings) -> Thresholds:
    """Quantiles of the per-word NLL (the scorer's, without any chunk) over every word of the
    roots in ``passes``: what "surprising" and "explained" mean for this scorer on this text.

    Why not nats: a word of 8 nats is rare for SmolLM2 on planted logs and common for it on
    Wikipedia; a larger model spends fewer nats everywhere. A quantile of the run's own
    distribution means the same for every scorer and corpus. Each root's baseline is read
    off its pass that covers most positions (all passes of a root share it).
    """
    base: dict[str, PassLike] = {}
    for p in passes:
        if p.doc_id not in base or len(p.positions) > len(base[p.doc_id].positions):
            base[p.doc_id] = p
    sums = []
    for d, p in base.items():
        words = words_of[d]
        g = np.full(len(words), np.nan)
        g[p.positions] = p.nll
        ok = np.isfinite(g)
        n_words = int(words.max()) + 1
        s = np.bincount(words, weights=np.where(ok, g, 0.0), minlength=n_words)
        has = np.bincount(words, weights=ok.astype(np.float64), minlength=n_words) > 0
        sums.append(s[has])
    allw = np.concatenate(sums) if sums else np.zeros(0)
    if allw.size == 0:
        return Thresholds(np.inf, np.inf, np.inf, np.inf, 0)
    word, sec = np.quantile(allw, [settings.word_quantile, settings.secondary_quantile])
    return Thresholds(float(word), float(settings.gain_factor * word), float(sec),
                      float(settings.secondary_gain_factor * sec), int(allw.size),
                      float(settings.root_gain_factor * word))


@dataclass
class JudgedPass:
    """What one (document, chunk) pass explains, before the comparison between chunks."""

    doc: str
    root_gain: float  # mean NLL fall per read token of the root: what the chunk explains of it
    strong: list[Entity]  # entities the chunk explains outright (the strong thresholds)
    closest: list[Entity]  # entities it explains at the root_* bars (count when it is the
    # root's best explainer)
    secondary: list[Entity]  # with a strong one: weaker entities it explains too
    entities: list[Entity]  # every entity at the secondary thresholds (rows' spans)
    full: dict[str, np.ndarray]  # the pass's arrays over the whole document


def _explains(e: Entity, gain: float, settings: DecisionSettings) -> bool:
    """The chunk removes enough of the entity's NLL, and (``priming`` rest or root) does not
    make the rest of the root less predictable: a chunk that only repeats the entity's surface
    word (a homonym in an unrelated article) cuts the word's NLL as much as an explanation
    does, but it raises the NLL of the root's other tokens (bench.realtext)."""
    return (e.gain >= gain and e.relative >= settings.min_relative_gain
            and (settings.priming == "off" or e.rest >= 0))


def judge_pass(p: PassLike, words: np.ndarray, rare: np.ndarray, th: Thresholds,
               settings: DecisionSettings, classify, copied: np.ndarray | None = None
               ) -> JudgedPass:
    """The entities pass ``p`` explains (``classify(doc, token, chunk)`` -> (class, why)),
    and its root-wide NLL fall over the positions the chunk does not copy (``copied``, per
    document position: a chunk repeating the root's own sentences lowers their NLL by
    reading them twice, which says nothing about explaining the root)."""
    m = len(words)
    full = {k: np.full(m, np.nan, np.float64) for k in ("g", "g2", "h", "h2")}
    full["cs"] = np.zeros(m, np.int64)
    for key, arr in (("g", p.nll), ("g2", p.nll_prime), ("h", p.h), ("h2", p.h_prime),
                     ("cs", p.context_start)):
        full[key][p.positions] = arr
    def informative(e: Entity) -> bool:
        return settings.copies == "keep" or classify(p.doc_id, e.head,
                                                     p.chunk_id)[0] == INFORMATIVE

    words_at = entities(full["g"], full["g2"], words, th.word_nll, rare)
    strong = [e for e in words_at if _explains(e, th.gain, settings) and informative(e)]
    # the root's best explainer is judged on all the entity's words: a name its own article
    # repeats in every part is not rare, and here the root as a whole, not rarity, tells
    # explaining from sharing a template
    closest = [e for e in entities(full["g"], full["g2"], words, th.word_nll)
               if e.gain >= th.root_gain and e.relative >= settings.root_relative_gain
               and informative(e)] if settings.priming == "root" else []
    ents = entities(full["g"], full["g2"], words, th.secondary_nll, rare) \
        if strong or closest else []
    secondary = [e for e in ents if _explains(e, th.secondary_gain, settings)]
    fall = full["g"] - full["g2"]
    read = np.isfinite(fall) if copied is None else np.isfinite(fall) & ~copied
    root_gain = float(fall[read].mean()) if read.any() else float("nan")
    return JudgedPass(p.doc_id, root_gain, strong, closest, secondary, ents, full)


def root_accepted(judged: Sequence[JudgedPass], settings: DecisionSettings,
                  share: float | None = None) -> list[bool]:
    """Per pass, whether the chunk explains its root as a whole (``priming: root``): it
    lowers the NLL of the root's tokens on average and by at least ``root_comparative`` of
    the best candidate of the same root.

    Why: a chunk that holds the anchor's surface word cuts that word's NLL whatever it means
    (Apollo 11's "Woodruff" by 17-22 nats from a tennis report), and the other words of the
    root are then read against the wrong topic; the chunk that explains the root (a part of
    its own article) lowers them too. On 12 Wikipedia roots the candidate with the largest
    root-wide fall is a part of the root's own or a linked article for 11 (bench.realtext);
    ranked by the fall at the anchor word, for 8. The comparison is within one root, so the
    rule needs no scale: a larger scorer lowers every candidate's fall alike.
    """
    if settings.priming != "root":
        return [False] * len(judged)
    best: dict[str, float] = {}
    for j in judged:
        if np.isfinite(j.root_gain):
            best[j.doc] = max(best.get(j.doc, -np.inf), j.root_gain)
    share = settings.root_comparative if share is None else share
    return [bool(np.isfinite(j.root_gain) and j.root_gain > 0
                 and j.root_gain >= share * best[j.doc]) for j in judged]


def best_gains(judged: Sequence[JudgedPass]) -> dict[tuple[str, int, int], float]:
    """(document, entity start, end) -> the largest gain any of these passes has on it
    (the passes that count: a chunk that only primes the word does not set the bar)."""
    best: dict[tuple[str, int, int], float] = {}
    for j in judged:
        for e in j.strong + (j.secondary if j.strong else []):
            key = (j.doc, e.start, e.end)
            best[key] = max(best.get(key, 0.0), e.gain)
    return best


def _nan_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


@dataclass
class DecideInputs:
    """What ``decide`` reads besides the verification scores.

    ``candidates``: retrieval_candidates columns doc_id, position, chunk_id, chunk_doc_id,
    rank. ``doc_tokens``/``chunk_tokens``: token ids. ``texts`` and ``offsets`` (doc_id ->
    (char_start, char_end)): the documents' words and the sample table. ``chunk_texts``:
    the sample table. ``recurring``: doc_id -> per-token recurring mask (or empty).
    ``doc_frequency``: term hash -> documents holding the word (lakehouse.recurring
    document_frequencies), over ``n_docs`` documents; empty: every word counts as rare.
    """

    candidates: Mapping[str, Sequence]
    doc_tokens: Mapping[str, np.ndarray]
    chunk_tokens: Mapping[str, np.ndarray]
    texts: Mapping[str, str]
    offsets: Mapping[str, tuple[np.ndarray, np.ndarray]]
    chunk_texts: Mapping[str, str]
    recurring: Mapping[str, np.ndarray]
    doc_frequency: Mapping[int, int] = field(default_factory=dict)
    n_docs: int = 0


def rare_words(text: str, starts: np.ndarray, ends: np.ndarray, words: np.ndarray,
               doc_frequency: Mapping[int, int], max_docs: int) -> np.ndarray:
    """Bool per word: at most ``max_docs`` documents hold it (punctuation never is rare)."""
    n_words = int(words.max()) + 1 if len(words) else 0
    first = np.searchsorted(words, np.arange(n_words), side="left")
    last = np.searchsorted(words, np.arange(n_words), side="right")
    out = np.zeros(n_words, bool)
    for k in range(n_words):
        term = normalize_term(text[int(starts[first[k]]):int(ends[last[k] - 1])])
        out[k] = bool(term) and (not doc_frequency
                                 or doc_frequency.get(unit_hash(term), 0) <= max_docs)
    return out


def _classify(inp: DecideInputs, doc: str, t: int, chunk: str, k: int) -> tuple[str, str]:
    why = []
    if context_copied(inp.doc_tokens[doc], t, inp.chunk_tokens[chunk], k):
        why.append("context")
    mask = inp.recurring.get(doc)
    if mask is not None and t < len(mask) and mask[t]:
        why.append("recurring")
    return (COPY, "+".join(why)) if why else (INFORMATIVE, "")


def decide(inp: DecideInputs, rows: Mapping[str, np.ndarray], passes: Sequence[PassLike],
           settings: DecisionSettings = DEFAULT_DECISION,
           truth: Sequence[Mapping] | None = None, thresholds: Thresholds | None = None
           ) -> tuple[pa.Table, dict]:
    """The decision stage: the verified_dependencies table and its statistics.

    ``rows``/``passes``: models.verification.Verification.rows/.passes for the candidates
    (empty with ``mode: off``). Every candidate row is kept in the table with its scores,
    class and decision; with the span rule, an entity the chunk explains that no anchor of
    the pair lies in adds a row at its head token (``origin: span``). ``truth``: planted
    ground truth rows, for planted quality and the sample table's `true source` column.
    ``thresholds``: the span rule's thresholds in nats, fixed (default: ``shard_thresholds``
    of the passes, the scorer's distribution on these roots).
    """
    cand = inp.candidates
    docs = [str(d) for d in cand["doc_id"]]
    positions = [int(p) for p in cand["position"]]
    chunk_ids = [str(c) for c in cand["chunk_id"]]
    chunk_docs = [str(c) for c in cand["chunk_doc_id"]]
    ranks = [int(r) for r in cand["rank"]]
    n = len(docs)
    on = settings.mode == "on"
    if on and settings.rule == "span" and passes and any(
            len(p.positions) and p.positions[-1] - p.positions[0] + 1 != len(p.positions)
            for p in passes):
        raise ValueError("the span rule needs H' at every position: verify with "
                         "positions: all")
    nan = np.full(n, np.nan, np.float32)
    h = np.asarray(rows.get("h", nan), np.float32)
    h2 = np.asarray(rows.get("h_prime", nan), np.float32)
    g = np.asarray(rows.get("nll", nan), np.float32)
    g2 = np.asarray(rows.get("nll_prime", nan), np.float32)
    status = list(rows.get("status", ["ok"] * n)) if on else ["unverified"] * n
    ctx_start = np.asarray(rows.get("context_start", np.zeros(n, np.int64)), np.int64)
    di = relative_gain(h, h2)
    with np.errstate(invalid="ignore"):
        tok_gain = (g - g2).astype(np.float64)
        tok_rel = np.where(g > 0, tok_gain / np.where(g > 0, g, 1), np.nan)
    span = np.stack([np.asarray(positions, np.int64), np.asarray(positions, np.int64) + 1],
                    1) if n else np.zeros((0, 2), np.int64)
    gain, rel = tok_gain.copy(), tok_rel.copy()
    classes, reasons = [], []
    for d, t, c in zip(docs, positions, chunk_ids, strict=True):
        cl, why = _classify(inp, d, t, c, settings.copy_context)
        classes.append(cl)
        reasons.append(why)
    if not on:
        passed = np.array([r <= settings.off_keep_top for r in ranks], bool)
    elif settings.rule == "delta_i":
        passed = verified(di, settings.epsilon, g, g2, settings.correctness_aware)
    else:
        passed = np.zeros(n, bool)
    extra: list[dict] = []
    accepted_pairs = 0
    if on and settings.rule == "span":
        by_pair: dict[tuple[str, str], list[int]] = {}
        for i, (d, c) in enumerate(zip(docs, chunk_ids, strict=True)):
            by_pair.setdefault((d, c), []).append(i)
        words_of = {d: word_ids(inp.texts[d], *inp.offsets[d])
                    for d in sorted({p.doc_id for p in passes})}
        max_docs = max(settings.rare_max_docs, int(settings.rare_max_share * inp.n_docs))
        rare_of = {d: rare_words(inp.texts[d], *inp.offsets[d], w, inp.doc_frequency,
                                 max_docs) for d, w in words_of.items()}
        if thresholds is None:
            thresholds = shard_thresholds(passes, words_of, settings)
        judged = [judge_pass(p, words_of[p.doc_id], rare_of[p.doc_id], thresholds, settings,
                             lambda d, t, c: _classify(inp, d, t, c, settings.copy_context),
                             None if settings.copies == "keep" else copied_positions(
                                 inp.doc_tokens[p.doc_id], inp.chunk_tokens[p.chunk_id],
                                 settings.copy_context))
                  for p in passes]
        whole = root_accepted(judged, settings)
        floor = root_accepted(judged, settings, settings.root_floor) \
            if settings.priming == "root" else [True] * len(judged)
        for j, ok, above in zip(judged, whole, floor, strict=True):
            # outright explanations count above the floor; the root's best explainer at the
            # weaker bars too
            j.strong = (j.strong if above else []) + (
                [e for e in j.closest if e not in j.strong] if ok else [])
        best = best_gains(judged)
        strongest: dict[str, float] = {}  # per root, its best chunk's strongest entity
        for j in judged:
            for e in j.strong:
                strongest[j.doc] = max(strongest.get(j.doc, 0.0), e.gain)
        for p, j in zip(passes, judged, strict=True):
            d, c = p.doc_id, p.chunk_id
            strong = [e for e in j.strong if e.gain >= settings.comparative * best[
                d, e.start, e.end]]
            if strong and max(e.gain for e in strong) < settings.comparative * strongest[d]:
                strong = []  # a chunk explaining far less than the root's best explains
            accepted_pairs += bool(strong)
            good = [e for e in j.secondary if e.gain >= settings.comparative * best[
                d, e.start, e.end]] if strong else []
            good_spans = {(e.start, e.end) for e in good}
            idx = by_pair.get((d, c), [])
            covered = set()
            for e in j.entities:
                inside = [i for i in idx if e.start <= positions[i] < e.end]
                for i in inside:
                    span[i] = (e.start, e.end)
                    gain[i], rel[i] = e.gain, e.relative
                    passed[i] = (e.start, e.end) in good_spans
                if inside and (e.start, e.end) in good_spans:
                    covered.add((e.start, e.end))
            first = idx[0] if idx else None
            full = j.full
            for e in good:
                if (e.start, e.end) in covered or first is None:
                    continue
                t = e.head
                cl, why = _classify(inp, d, t, c, settings.copy_context)
                extra.append({
                    "doc_id": d, "position": t, "chunk_id": c,
                    "chunk_doc_id": chunk_docs[first],
                    "rank": min(ranks[i] for i in idx), "h": full["h"][t],
                    "h_prime": full["h2"][t], "nll": full["g"][t], "nll_prime": full["g2"][t],
                    "status": "ok", "context_start": int(full["cs"][t]), "origin": "span",
                    "span": (e.start, e.end), "gain": e.gain, "relative": e.relative,
                    "class": cl, "reason": why})
    table_rows = []
    for i in range(n):
        table_rows.append({
            "doc_id": docs[i], "position": positions[i], "chunk_id": chunk_ids[i],
            "chunk_doc_id": chunk_docs[i], "rank": ranks[i], "h": float(h[i]),
            "h_prime": float(h2[i]), "nll": float(g[i]), "nll_prime": float(g2[i]),
            "status": status[i], "context_start": int(ctx_start[i]), "origin": "anchor",
            "span": (int(span[i][0]), int(span[i][1])), "gain": float(gain[i]),
            "relative": float(rel[i]), "class": classes[i], "reason": reasons[i],
            "passed": bool(passed[i])})
    for e in extra:
        e["passed"] = True
        table_rows.append(e)
    out, kept_flags = [], []
    for r in table_rows:
        keep = r["passed"] and (r["class"] == INFORMATIVE or settings.copies == "keep")
        di_r = relative_gain(np.array([r["h"]]), np.array([r["h_prime"]]))[0]
        out.append({
            "doc_id": r["doc_id"], "position": r["position"], "chunk_id": r["chunk_id"],
            "chunk_doc_id": r["chunk_doc_id"], "rank": r["rank"],
            "h": _nan_none(r["h"]), "h_prime": _nan_none(r["h_prime"]),
            "delta_i": _nan_none(di_r), "nll": _nan_none(r["nll"]),
            "nll_prime": _nan_none(r["nll_prime"]), "verified": bool(keep),
            "epsilon": settings.epsilon, "mode": settings.mode, "status": r["status"],
            "rule": settings.rule if on else "off", "origin": r["origin"],
            "dependency_class": r["class"], "copy_reason": r["reason"],
            "passed": bool(r["passed"]), "gain": _nan_none(r["gain"]),
            "relative_gain": _nan_none(r["relative"]), "span_start": r["span"][0],
            "span_end": r["span"][1], "context_start": r["context_start"]})
        kept_flags.append(keep)
    table = tables.from_rows(out, tables.VERIFIED_DEPENDENCIES)
    stats = dependency_stats(out)
    stats["pairs"] = len({(r["doc_id"], r["chunk_id"]) for r in out})
    stats["pairs_accepted"] = accepted_pairs
    if thresholds is not None and on and settings.rule == "span":
        stats["thresholds"] = thresholds.as_dict()
    if truth:
        from lakehouse.planted_eval import kept_row_targets, planted_quality

        stats.update(planted_quality(truth, inp.offsets, out, settings.off_keep_top))
        stats.update(kept_row_targets(truth, out))
    stats["sample_markdown"] = sample_markdown(out, inp, truth, settings.samples)
    return table, stats


def dependency_stats(rows: Sequence[Mapping]) -> dict:
    """Counts and means of a verified_dependencies table (NaN and null rows ignored)."""
    di = np.array([r["delta_i"] if r["delta_i"] is not None else np.nan for r in rows],
                  np.float64)
    kept = np.array([r["verified"] for r in rows], bool)
    passed = np.array([r.get("passed", r["verified"]) for r in rows], bool)
    copy = np.array([r["dependency_class"] == COPY for r in rows], bool)

    def mean(x: np.ndarray) -> float:
        x = x[np.isfinite(x)]
        return float(x.mean()) if x.size else float("nan")

    return {"rows": len(rows), "verified": int(kept.sum()),
            "passed": int(passed.sum()), "copies_passed": int((passed & copy).sum()),
            "copies_kept": int((kept & copy).sum()),
            "copy_rows": int(copy.sum()),
            "span_rows": int(sum(r["origin"] == "span" for r in rows)),
            "too_long": int(sum(r["status"] == "too_long" for r in rows)),
            "mean_delta_i": mean(di), "mean_delta_i_verified": mean(di[kept])}


def _mark(text: str, starts: np.ndarray, ends: np.ndarray, a: int, b: int,
          width: int = 60) -> str:
    lo, hi = int(starts[a]), int(ends[b - 1])
    while lo < hi and text[lo].isspace():
        lo += 1
    left = text[max(0, lo - width):lo]
    right = text[hi:hi + width]
    s = f"…{left}**{text[lo:hi]}**{right}…"
    return s.replace("\n", " ").replace("|", "\\|")


def sample_markdown(rows: Sequence[Mapping], inp: DecideInputs,
                    truth: Sequence[Mapping] | None, limit: int) -> str:
    """A Markdown table of up to ``limit`` kept rows: the root around the anchor (entity in
    bold), the start of the chunk, H -> H' and NLL -> NLL' at the row's token, dI, nats
    gained over the entity, class; for planted corpora whether the chunk is the root's true
    source. Rows of distinct documents first. (At a name's head token H' can exceed H while
    NLL falls: the model, now expecting the name, is unsure how it continues.)"""
    kept = [r for r in rows if r["verified"]]
    kept.sort(key=lambda r: (-(r["gain"] or 0.0), r["doc_id"], r["position"]))
    seen: set[str] = set()
    first = [r for r in kept if not (r["doc_id"] in seen or seen.add(r["doc_id"]))]
    pick = (first + [r for r in kept if r not in first])[:limit]
    sources = {}
    for t in truth or ():
        sources.setdefault(t["root_doc_id"], set()).add(t["source_doc_id"])
    head = ("| root around the anchor | chunk starts | H -> H' | NLL -> NLL' | dI | gain (nats) "
            "| class |")
    sep = "|---|---|---|---|---|---|---|"
    if truth:
        head += " true source |"
        sep += "---|"
    lines = [head, sep]
    for r in pick:
        starts, ends = inp.offsets[r["doc_id"]]
        ctx = _mark(inp.texts[r["doc_id"]], starts, ends, r["span_start"], r["span_end"])
        chunk = inp.chunk_texts.get(r["chunk_id"], "")[:80].replace("\n", " ")
        chunk = chunk.replace("|", "\\|")

        def f(x: float | None) -> str:
            return "nan" if x is None else f"{x:.2f}"

        line = (f"| {ctx} | {chunk}… | {f(r['h'])} -> {f(r['h_prime'])} | {f(r['nll'])} -> "
                f"{f(r['nll_prime'])} | {f(r['delta_i'])} | {f(r['gain'])} "
                f"| {r['dependency_class']} |")
        if truth:
            if r["doc_id"] not in sources:
                line += " n/a |"
            else:
                line += " yes |" if r["chunk_doc_id"] in sources[r["doc_id"]] else " no |"
        lines.append(line)
    return "\n".join(lines)
