"""Retrieval (EntropyLong step 2): anchor queries in, K candidate chunks per anchor out.

Dense search alone loses the dependencies worth keeping: a sentence embedding of a window
holding an invented name, a code or a date is close to every window of the same kind, so in
a pool of same-topic documents the true source ranks among look-alikes. A lexical (BM25)
query matches the name itself, but not a query of the whole window: in prose every word of
the window except the entity recurs in the look-alikes of its template (they repeat the
sentence with another name), and they outscore the source, which shares only the name. So
the lexical query is the window's ``lexical_terms`` rarest words by pool document frequency
(the index keeps them per shard), which in such a window are the entity's.

The window alone is not always enough: an anchor at a fact's later token, or in a sentence
that names the entity only once, leaves the window's rarest words generic. So each lexical
query also carries the root document's ``context_terms`` rarest words at half weight
(``context_weight``): the entities the root is about, which its sources name too. On the
100K-chunk look-alike pool this lifts oracle-window recall from 0.78 to 0.99 of fact spans.

``mode: hybrid`` (the default) runs both sides over the same table and fuses their ranked
lists by reciprocal rank, which needs no calibration between cosine and BM25. A chunk's
fused score is its best side's (``fusion: max``), lexical ranks weighted up: classic RRF
sums the sides and so rewards what both find, here the look-alikes (near the query in
vector space and sharing its template words), over the source that only the name finds.
bench.retrieval measures every choice on a planted pool up to 100K chunks.

Candidates are then made to count:

* never the root itself, never a near-copy of it (verification would reward self-copying:
  a chunk of the root trivially lowers the entropy of the root's own tokens);
* at most ``per_doc`` chunks of one pool document per anchor, so K slots are not spent on
  the consecutive chunks of one look-alike;
* a candidate whose vector is a near-copy of a better-ranked candidate (recurring
  boilerplate, templates) collapses into it.

Each drop is counted per anchor, and each candidate records which side found it.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from lakehouse import tables
from lakehouse.vector_index import Hits, LexicalQuery, VectorIndex, terms_of

Mode = Literal["dense", "lexical", "hybrid"]


class RetrievalSettings(BaseModel):
    """Settings of the retrieval stage (the ``retrieval`` block of the pipeline config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    k: int = Field(8, gt=0)  # candidates kept per anchor
    near_dup_cosine: float = Field(0.95, gt=0, le=1)  # hits this close to a chunk of the root
    # are excluded
    batch_size: int = Field(256, gt=0)  # queries per embedding / dense search batch
    mode: Mode = "hybrid"  # dense (MiniLM cosine) | lexical (BM25) | hybrid (both, fused)
    depth: int = Field(16, gt=0)  # hits fetched per side before exclusion and fusion (the
    # root's own chunk count is added, so its chunks cannot crowd the list out)
    rrf_k: float = Field(60.0, gt=0)  # hybrid: a hit at rank r scores w / (rrf_k + r)
    lexical_weight: float = Field(1.5, gt=0)  # hybrid: w of the lexical lists (dense: 1);
    # 1.5 puts lexical ranks up to 30 before the best dense hit
    fusion: Literal["max", "sum"] = "max"  # hybrid: a chunk's score is its best side's
    # (max) or the sum over sides (sum, classic RRF; rewards look-alikes both sides find)
    per_doc: int | None = Field(1, gt=0)  # candidates from one pool document per anchor
    # (None: no limit)
    dedup_cosine: float | None = Field(0.95, gt=0, le=1)  # a candidate this close to a
    # better-ranked one collapses into it (None: off)
    lexical_terms: int | None = Field(2, gt=0)  # lexical: the query is the window's this many
    # rarest words (fewest pool chunks holding them, words the pool lacks skipped); None: the
    # whole window text
    anchor_boost: float = Field(0.0, ge=0)  # lexical: extra weight of the anchor's own word
    # (0: the window text alone)
    anchor_word_query: bool = False  # lexical: also one query of the anchor's word alone,
    # fused as a third list
    context_terms: int = Field(4, ge=0)  # lexical: the root document's this many rarest words
    # join every query of its anchors (0: off; needs retrieve(root_texts=...))
    context_weight: float = Field(0.5, gt=0)  # lexical: weight of those words
    context_query: Literal["joined", "list"] = "joined"  # joined: the words join each window
    # query; list: one query of the root's words alone per root, fused as its own list
    # (weight lexical_weight x context_weight)
    sample_queries: int = Field(8, ge=0)  # queries shown in the Markdown sample
    refresh: Literal["incremental", "full"] = "incremental"  # incremental: a root shard's
    # stored dense lists get only the added pool shards' hits (lakehouse.retrieval_state);
    # full: every run searches the whole index on both sides


@dataclass(frozen=True)
class Candidate:
    rank: int  # 1-based among the kept candidates
    chunk_id: str
    chunk_doc_id: str
    score: float  # cosine similarity of query and chunk
    found_by: str = "dense"  # dense | lexical | both
    dense_rank: int | None = None  # 1-based among the side's eligible hits
    lexical_rank: int | None = None
    bm25: float | None = None
    fused: float = 0.0  # reciprocal-rank score (single mode: that side's alone)


@dataclass(frozen=True)
class Filtered:
    candidates: list[Candidate]
    excluded_self: int
    excluded_near_dup: int
    excluded_per_doc: int = 0
    excluded_dup_candidate: int = 0


def filter_hits(root_doc_id: str, hits: Hits, root_vectors: np.ndarray, k: int,
                near_dup_cosine: float) -> Filtered:
    """Keep the best ``k`` hits that are neither the root's chunks nor near-copies of them.

    A hit is a near-copy when its cosine similarity to any chunk of the root exceeds
    ``near_dup_cosine``. (Dense hits only, no per-document or candidate limits: what
    ``select`` does with ``per_doc=None, dedup_cosine=None``.)
    """
    return select(root_doc_id, {"dense": hits}, root_vectors, None, k, near_dup_cosine,
                  per_doc=None, dedup_cosine=None)  # one list: fusion keeps its order


def _excluded(root_doc_id: str, hits: Hits, root_vectors: np.ndarray, near_dup_cosine: float
              ) -> tuple[list[int], set[str], set[str]]:
    """Eligible hit indices, and the chunk ids excluded as self and as near-copies."""
    if len(root_vectors) and len(hits.chunk_ids) and hits.vectors.shape[1]:
        dup_sim = (hits.vectors @ root_vectors.T).max(axis=1)
    else:
        dup_sim = np.full(len(hits.chunk_ids), -1.0, np.float32)
    keep, selfs, dups = [], set(), set()
    for i, (cid, did) in enumerate(zip(hits.chunk_ids, hits.doc_ids, strict=True)):
        if did == root_doc_id:
            selfs.add(cid)
        elif dup_sim[i] > near_dup_cosine:
            dups.add(cid)
        else:
            keep.append(i)
    return keep, selfs, dups


def select(root_doc_id: str, sides: dict[str, Hits], root_vectors: np.ndarray,
           query_vector: np.ndarray | None, k: int, near_dup_cosine: float,
           per_doc: int | None = 1, dedup_cosine: float | None = 0.95, rrf_k: float = 60.0,
           lexical_weight: float = 1.5, fusion: str = "max", context_weight: float = 0.5
           ) -> Filtered:
    """The ``k`` candidates of one anchor from the ranked hit lists of each side.

    ``sides`` maps a side name to its hits, best first: ``dense``, and ``lexical`` or several
    lexical lists (names starting with ``lexical``, e.g. the window and the anchor word).
    The root's chunks and near-copies are removed from every list first; the lists are then
    fused by reciprocal rank: each list gives a hit w / (rrf_k + rank among its eligible
    hits), w = ``lexical_weight`` for lexical lists (times ``context_weight`` for the root
    context's list, ``lexical_context``) and 1 for dense, and a chunk's score is
    the best of these (``fusion="max"``) or their sum (``"sum"``, classic RRF); one list
    keeps its order;
    the fused list is walked best first, dropping a hit past ``per_doc`` chunks of its
    document, or within ``dedup_cosine`` of a kept one.
    Ties are broken by chunk id. ``score`` is the cosine of query and chunk (NaN without a
    query vector).
    """
    fused: dict[str, float] = {}
    info: dict[str, dict] = {}
    selfs: set[str] = set()
    dups: set[str] = set()
    for name, hits in sides.items():
        keep, s, d = _excluded(root_doc_id, hits, root_vectors, near_dup_cosine)
        selfs |= s
        dups |= d
        side = "dense" if name == "dense" else "lexical"
        weight = 1.0 if side == "dense" else lexical_weight * (
            context_weight if name == "lexical_context" else 1.0)
        for rank, i in enumerate(keep, start=1):
            cid = hits.chunk_ids[i]
            score = weight / (rrf_k + rank)
            fused[cid] = fused.get(cid, 0.0) + score if fusion == "sum" else max(
                fused.get(cid, 0.0), score)
            row = info.setdefault(cid, {"doc": hits.doc_ids[i], "vec": hits.vectors[i]
                                        if hits.vectors.shape[1] else None, "sides": set()})
            row["sides"].add(side)
            if side == "dense":
                row.setdefault("dense_rank", rank)
                row["cos"] = float(hits.scores[i])
            else:  # the window's list comes before the anchor word's
                row.setdefault("lexical_rank", rank)
                row.setdefault("bm25", float(hits.scores[i]))
    order = sorted(fused, key=lambda c: (-fused[c], c))
    kept: list[Candidate] = []
    kept_vecs: list[np.ndarray] = []
    per: dict[str, int] = {}
    n_doc = n_dup = 0
    for cid in order:
        if len(kept) == k:
            break
        row = info[cid]
        if per_doc is not None and per.get(row["doc"], 0) >= per_doc:
            n_doc += 1
            continue
        vec = row["vec"]
        if dedup_cosine is not None and vec is not None and kept_vecs and \
                float(np.max(np.stack(kept_vecs) @ vec)) > dedup_cosine:
            n_dup += 1
            continue
        per[row["doc"]] = per.get(row["doc"], 0) + 1
        if vec is not None:
            kept_vecs.append(vec)
        if "cos" in row:
            cos = row["cos"]
        elif query_vector is not None and vec is not None:
            cos = float(query_vector @ vec)
        else:
            cos = float("nan")
        by = "both" if len(row["sides"]) == 2 else next(iter(row["sides"]))
        kept.append(Candidate(len(kept) + 1, cid, row["doc"], cos, by, row.get("dense_rank"),
                              row.get("lexical_rank"), row.get("bm25"), fused[cid]))
    return Filtered(kept, len(selfs), len(dups - selfs), n_doc, n_dup)


_WORD = re.compile(r"[\w][\w'\-]*[\w]|[\w]", re.UNICODE)


def anchor_word(text: str, char_start: Sequence[int], char_end: Sequence[int],
                position: int) -> str:
    """The word of ``text`` that holds token ``position`` (letters, digits, inner - and ').

    A sub-word token ("Qu" of "Quorvath") gives its whole word; a token of punctuation or
    space alone gives the word that follows within a few characters, or "".
    """
    lo, hi = int(char_start[position]), int(char_end[position])
    start = lo
    inside = lo < len(text) and (text[lo].isalnum() or text[lo] == "_")
    while inside and start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_-'"):
        start -= 1  # back to the start of the word the token is inside
    m = _WORD.search(text, start, min(len(text), max(hi, lo + 1) + 8))
    return m.group(0) if m and m.start() < max(hi, lo + 1) + 8 else ""


def rarest_terms(query: str, df: Mapping[str, int], n: int,
                 own: Mapping[str, int] | None = None) -> str:
    """The ``n`` words of ``query`` that the fewest *other* pool chunks hold, joined.

    Why: in a window such as "A portrait of Dmitri Stesksterness hangs in the main reading
    room", every word but the name recurs in all documents of the template, and a look-alike
    repeating the sentence with another name matches ten of its words where the true source
    matches two; BM25's IDF weighting does not undo that (bench.retrieval: the whole window
    finds the source for 2% of spans at 100K chunks, its two rarest words for 79%).

    ``own``: per word, how many of the counted chunks belong to the root itself (its own
    chunks when its corpus is also pool, and near-copies of them). Those are subtracted: a
    word only the root holds cannot find anything else (the hit is excluded as self), and on
    real prose, where the root sits in the pool, the rarest words by raw count are exactly
    those (bench.realtext). Words no other chunk holds are skipped. Ranked by that count
    (inverse document frequency), ties by how often the word occurs in ``query`` (the word
    the text is about), then by where it first occurs: never by spelling.
    """
    own = own or {}
    count: Counter[str] = Counter()
    first: dict[str, int] = {}
    for i, w in enumerate(terms_of(query)):
        count[w] += 1
        first.setdefault(w, i)
    other = {w: df.get(w, 0) - own.get(w, 0) for w in count}
    words = sorted((w for w in count if other[w] > 0),
                   key=lambda w: (other[w], -count[w], first[w]))
    return " ".join(words[:n])


def lexical_queries(query: str, word: str, settings: RetrievalSettings,
                    df: Mapping[str, int] | None = None, context: str = "",
                    own: Mapping[str, int] | None = None) -> dict[str, LexicalQuery]:
    """The lexical query lists of one anchor: the window (its ``lexical_terms`` rarest words
    when set, by ``df``), with the anchor's word boosted when ``anchor_boost`` > 0 and the
    root's ``context`` words at ``context_weight``, and, with ``anchor_word_query``, a list
    of the anchor's word alone."""
    text = query if settings.lexical_terms is None else rarest_terms(
        query, df or {}, settings.lexical_terms, own)
    clauses = [(text, 1.0)]
    if settings.anchor_boost > 0 and word:
        clauses.append((word, settings.anchor_boost))
    if context and settings.context_query == "joined":
        clauses.append((context, settings.context_weight))
    out: dict[str, LexicalQuery] = {"lexical": text if len(clauses) == 1 else clauses}
    if settings.anchor_word_query and word:
        out["lexical_word"] = word
    if context and settings.context_query == "list":
        out["lexical_context"] = context
    return out


def _unique(keys: list) -> tuple[list, list[int]]:
    first: dict = {}
    idx = [first.setdefault(key, len(first)) for key in keys]
    return list(first), idx


def own_term_counts(index: VectorIndex, own_chunks: pa.Table, near_dup_cosine: float,
                    depth: int = 8) -> dict[str, Counter[str]]:
    """Per root document, per word, how many chunks of the index that count towards the
    word's document frequency are the root's own: its chunks that are in the index (its
    corpus is also pool) and chunks of other documents within ``near_dup_cosine`` of one of
    them (near-copies, found by a dense search of the root's chunk vectors, ``depth`` hits
    each). ``own_chunks``: ``doc_id``, ``chunk_id``, ``vector`` (without ``chunk_id`` only
    near-copies are found)."""
    out: dict[str, Counter[str]] = {}
    if own_chunks.num_rows == 0 or index.count() == 0:
        return out
    docs = own_chunks["doc_id"].to_pylist()
    ids = own_chunks["chunk_id"].to_pylist() if "chunk_id" in own_chunks.column_names \
        else []
    owner = dict(zip(ids, docs, strict=True))
    vecs, _ = _own(own_chunks.select(["doc_id", "vector"]), index.dim)
    found: dict[str, set[str]] = {}
    for cid, d in owner.items():
        found.setdefault(d, set()).add(cid)
    for d, hits in zip(docs, index.search(vecs, depth), strict=True):
        for cid, hd, cos in zip(hits.chunk_ids, hits.doc_ids, hits.scores, strict=True):
            if hd != d and cos > near_dup_cosine:
                found.setdefault(d, set()).add(cid)
    texts = index.texts(sorted({c for cs in found.values() for c in cs}))
    for d, cs in found.items():
        counter: Counter[str] = Counter()
        for c in cs:
            if c in texts:  # a root chunk left out of the index counts nowhere
                counter.update(set(terms_of(texts[c])))
        out[d] = counter
    return out


def root_context(index: VectorIndex, doc_ids: list[str], root_texts: Mapping[str, str],
                 n_terms: int, own: Mapping[str, Mapping[str, int]] | None = None
                 ) -> list[str]:
    """Per anchor, its root's ``n_terms`` rarest words among the pool's other chunks ("" with
    ``n_terms`` 0); ``own``: ``own_term_counts``."""
    if n_terms == 0:
        return [""] * len(doc_ids)
    roots = sorted(set(doc_ids))
    words = {d: terms_of(root_texts.get(d, "")) for d in roots}
    df, _ = index.document_frequency(sorted({w for ws in words.values() for w in ws}))
    own = own or {}
    ctx = {d: rarest_terms(" ".join(words[d]), df, n_terms, own.get(d)) for d in roots}
    return [ctx[d] for d in doc_ids]


@dataclass
class Searched:
    """What the searches of one root shard found, before exclusion and fusion: each side's
    ranked hits per distinct query, each anchor's row in them, and the lexical queries as
    searched (the words chosen from the pool's frequencies at the time). An incremental run
    (lakehouse.retrieval_state) merges a new shard's hits into these lists."""

    dense: list[Hits]  # per distinct dense query (the anchor's window text)
    dense_of: list[int]  # per anchor, its row in ``dense``
    lexical: list[dict[str, Hits]]  # per distinct lexical key, per list name
    lexical_of: list[int]  # per anchor, its row in ``lexical``
    lexical_queries: list[dict[str, LexicalQuery]]  # per distinct lexical key, as searched
    fetch: int  # hits fetched per list
    dense_s: float = 0.0
    lexical_s: float = 0.0


def fetch_depth(own_chunks: pa.Table, settings: RetrievalSettings) -> int:
    """Hits fetched per list: ``depth`` plus the most chunks one root has (its own chunks
    are excluded after the search, so they cannot crowd the list out)."""
    per_doc = Counter(own_chunks["doc_id"].to_pylist()) if own_chunks.num_rows else Counter()
    return settings.depth + max(per_doc.values(), default=0)


def search_sides(anchors: pa.Table, query_vectors: np.ndarray | None, own_chunks: pa.Table,
                 index: VectorIndex, settings: RetrievalSettings,
                 root_texts: Mapping[str, str] | None = None,
                 dense: tuple[list[Hits], list[int]] | None = None) -> Searched:
    """Every side's searches of one root shard's anchors over the whole index (see
    ``retrieve`` for the arguments); ``dense``: the dense side's lists already brought up
    to date (lakehouse.retrieval_state), so that only the lexical side is searched."""
    n = anchors.num_rows
    mode = settings.mode
    doc_ids = anchors["doc_id"].to_pylist()
    queries = anchors["query"].to_pylist()
    words = (anchors["anchor_word"].to_pylist() if "anchor_word" in anchors.column_names
             else [""] * n)
    words = [w or "" for w in words]
    fetch = fetch_depth(own_chunks, settings)
    own_terms = own_term_counts(index, own_chunks, settings.near_dup_cosine) \
        if mode != "dense" and n else {}
    contexts = root_context(index, doc_ids, root_texts, settings.context_terms, own_terms) \
        if mode != "dense" and root_texts else [""] * n
    # the two sides run at once: BLAS (dense) and LanceDB (lexical) both release the GIL
    with ThreadPoolExecutor(max_workers=1) as pool:
        lexical_job = pool.submit(_lexical_side, index, queries, words, contexts, fetch,
                                  settings, doc_ids, own_terms) if mode != "dense" and n \
            else None
        t0 = time.perf_counter()
        if dense is None:
            dense = _dense_side(index, queries, query_vectors, fetch, settings) \
                if mode != "lexical" and n else ([], [])
        dense_lists, dense_of = dense
        dense_s = time.perf_counter() - t0
        lexical, lexical_of, per_key, lexical_s = lexical_job.result() if lexical_job \
            else ([], [], [], 0.0)
    return Searched(dense_lists, dense_of, lexical, lexical_of, per_key, fetch, dense_s,
                    lexical_s)


def retrieve(anchors: pa.Table, query_vectors: np.ndarray | None, own_chunks: pa.Table,
             index: VectorIndex, settings: RetrievalSettings,
             root_texts: Mapping[str, str] | None = None,
             searched: Searched | None = None) -> tuple[pa.Table, dict]:
    """Candidates of every anchor of one root shard (``tables.RETRIEVAL_CANDIDATES``).

    ``anchors``: ``doc_id``, ``position``, ``query`` and optionally ``anchor_word`` (see
    ``anchor_word``; used by ``anchor_boost`` and ``anchor_word_query``). ``query_vectors``:
    the unit-norm embedding of each anchor's query, row for row (may be None in lexical
    mode). ``own_chunks``: ``doc_id``, ``vector`` and ``chunk_id`` of the shard's own chunks
    (what counts as a near-copy of a root, and which chunks' words are not counted in the
    frequencies that pick its lexical query words: ``own_term_counts``). ``root_texts``
    (doc_id -> text) is read only with ``context_terms`` > 0. Each distinct query is searched
    once. ``searched``: the searches already made (an incremental run's merged lists;
    default: ``search_sides`` now). Returns the table and its statistics: counts, each drop
    reason, the share of anchors whose candidates came from the lexical side only / the
    dense side only / both, timings and a Markdown sample.
    """
    n = anchors.num_rows
    mode = settings.mode
    if mode != "lexical" and n and (query_vectors is None or len(query_vectors) != n):
        raise ValueError("query_vectors must have one row per anchor in dense/hybrid mode")
    if settings.context_terms and mode != "dense" and root_texts is None:
        raise ValueError("context_terms > 0 needs root_texts (doc_id -> text of each root)")
    doc_ids = anchors["doc_id"].to_pylist()
    positions = anchors["position"].to_pylist()
    queries = anchors["query"].to_pylist()
    own_vecs, own_by_doc = _own(own_chunks, index.dim)
    t0 = time.perf_counter()
    if searched is None:
        searched = search_sides(anchors, query_vectors, own_chunks, index, settings,
                                root_texts)
    dense, dense_of = searched.dense, searched.dense_of
    lexical, lexical_of = searched.lexical, searched.lexical_of
    stats: dict = {"mode": mode, "anchors": n, "k": settings.k, "depth": searched.fetch,
                   "dense_s": searched.dense_s, "lexical_s": searched.lexical_s,
                   "search_s": time.perf_counter() - t0}
    distinct = max(len(dense), len(lexical))
    stats["distinct_queries"] = distinct
    stats["queries_per_s"] = distinct / stats["search_s"] if stats["search_s"] > 0 \
        else float("nan")

    rows: list[dict] = []
    counts = {"excluded_self": 0, "excluded_near_dup": 0, "excluded_per_doc": 0,
              "excluded_dup_candidate": 0}
    sides_of_anchor = {"lexical_only": 0, "dense_only": 0, "both": 0}
    no_candidates = 0
    per_anchor: list[tuple[int, Filtered]] = []
    for a in range(n):
        sides: dict[str, Hits] = {}
        if dense:
            sides["dense"] = dense[dense_of[a]]
        if lexical:
            sides.update(lexical[lexical_of[a]])
        qvec = None if query_vectors is None else np.asarray(query_vectors[a], np.float32)
        root_vecs = own_vecs[own_by_doc.get(doc_ids[a], [])]
        f = select(doc_ids[a], sides, root_vecs, qvec, settings.k, settings.near_dup_cosine,
                   settings.per_doc, settings.dedup_cosine, settings.rrf_k,
                   settings.lexical_weight, settings.fusion, settings.context_weight)
        per_anchor.append((a, f))
        for key in counts:
            counts[key] += getattr(f, key)
        if not f.candidates:
            no_candidates += 1
            continue
        lex = any(c.found_by != "dense" for c in f.candidates)
        den = any(c.found_by != "lexical" for c in f.candidates)
        sides_of_anchor["both" if lex and den else "lexical_only" if lex else "dense_only"] += 1
        for c in f.candidates:
            rows.append({"doc_id": doc_ids[a], "position": positions[a], "rank": c.rank,
                         "chunk_id": c.chunk_id, "chunk_doc_id": c.chunk_doc_id,
                         "score": c.score, "excluded_self": f.excluded_self,
                         "excluded_near_dup": f.excluded_near_dup,
                         "excluded_per_doc": f.excluded_per_doc,
                         "excluded_dup_candidate": f.excluded_dup_candidate,
                         "found_by": c.found_by, "dense_rank": c.dense_rank,
                         "lexical_rank": c.lexical_rank, "bm25": c.bm25,
                         "fused_score": c.fused, "mode": mode})
    table = tables.from_rows(rows, tables.RETRIEVAL_CANDIDATES)
    with_cands = max(n - no_candidates, 1)
    stats.update(counts)
    stats.update({"candidates": len(rows), "anchors_without_candidates": no_candidates,
                  **{f"share_{key}": v / with_cands for key, v in sides_of_anchor.items()},
                  "candidates_found_by": {by: sum(r["found_by"] == by for r in rows)
                                          for by in ("dense", "lexical", "both")}})
    stats["sample"] = sample_markdown(per_anchor, queries, doc_ids, positions, index,
                                      settings.sample_queries)
    return table, stats


def _dense_side(index: VectorIndex, queries: list[str], query_vectors: np.ndarray, fetch: int,
                settings: RetrievalSettings) -> tuple[list[Hits], list[int]]:
    """Cosine hits of each distinct query, and each anchor's row in them."""
    uq, of = _unique(queries)
    first = {q: i for i, q in reversed(list(enumerate(queries)))}
    qv = np.asarray(query_vectors, np.float32)[[first[q] for q in uq]]
    return index.search(qv, fetch, batch=settings.batch_size), of


def _lexical_side(index: VectorIndex, queries: list[str], words: list[str], contexts: list[str],
                  fetch: int, settings: RetrievalSettings, doc_ids: list[str],
                  own_terms: Mapping[str, Mapping[str, int]]
                  ) -> tuple[list[dict[str, Hits]], list[int], list[dict[str, LexicalQuery]],
                             float]:
    """BM25 hit lists of each distinct (query, anchor word, context, root), each anchor's row
    in them, the queries searched, and the seconds it took (the root counts: its own chunks
    are not counted in the frequencies that pick its window's words)."""
    t0 = time.perf_counter()
    ukeys, of = _unique(list(zip(queries, words, contexts, doc_ids, strict=True)))
    df: dict[str, int] = {}
    if settings.lexical_terms is not None:
        df, _ = index.document_frequency(sorted({t for q, *_ in ukeys for t in terms_of(q)}))
    per_key = [lexical_queries(q, w, settings, df, c, own_terms.get(d))
               for q, w, c, d in ukeys]
    lexical: list[dict[str, Hits]] = [{} for _ in ukeys]
    for name in sorted({name for lq in per_key for name in lq}):
        rows = [i for i, lq in enumerate(per_key) if name in lq]
        # each distinct query once (a root's context list is the same for all its anchors)
        qs = [per_key[i][name] for i in rows]
        keys = [repr(q) for q in qs]  # a query may be a list of (text, boost): not hashable
        distinct, of_row = _unique(keys)
        query_of = dict(zip(keys, qs, strict=True))  # equal keys, equal queries
        found = index.search_lexical([query_of[k] for k in distinct], fetch)
        for i, j in zip(rows, of_row, strict=True):
            lexical[i][name] = found[j]
    return lexical, of, per_key, time.perf_counter() - t0


def _own(own_chunks: pa.Table, dim: int) -> tuple[np.ndarray, dict[str, list[int]]]:
    if own_chunks.num_rows == 0:
        return np.zeros((0, dim), np.float32), {}
    vecs = own_chunks["vector"].combine_chunks().flatten().to_numpy(
        zero_copy_only=False).reshape(-1, dim).astype(np.float32)
    by_doc: dict[str, list[int]] = {}
    for i, d in enumerate(own_chunks["doc_id"].to_pylist()):
        by_doc.setdefault(d, []).append(i)
    return vecs, by_doc


def _cell(text: str, width: int) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= width else text[:width - 1] + "…"


def sample_markdown(per_anchor: list[tuple[int, Filtered]], queries: list[str],
                    doc_ids: list[str], positions: list[int], index: VectorIndex, n: int,
                    top: int = 3) -> str:
    """A Markdown table of ``n`` anchors spread over the shard: query, top candidates (which
    side found each, cosine, BM25) and the opening of the best one's text."""
    if n == 0 or not per_anchor:
        return ""
    step = max(1, len(per_anchor) // n)
    picked = per_anchor[::step][:n]
    best = [f.candidates[0].chunk_id for _, f in picked if f.candidates]
    texts = index.texts(best)
    lines = ["| root | position | query | top candidates (side, cosine, BM25) | best text |",
             "|---|---|---|---|---|"]
    for a, f in picked:
        cands = "<br>".join(
            f"{c.rank}. `{c.chunk_id}` {c.found_by}, {c.score:.2f}, "
            f"{'-' if c.bm25 is None else f'{c.bm25:.1f}'}" for c in f.candidates[:top])
        text = texts.get(f.candidates[0].chunk_id, "") if f.candidates else ""
        lines.append(f"| `{doc_ids[a][:12]}` | {positions[a]} | {_cell(queries[a], 100)} | "
                     f"{cands or 'none'} | {_cell(text, 120)} |")
    return "\n".join(lines)
