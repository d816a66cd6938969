"""Writers for the demo corpora: generated shards on disk, read back like any real corpus.

The demo corpora are written as ordinary shard files (Parquet for `planted` and
`realistic`, JSONL for `pystdlib`) so that everything downstream, from shard discovery to
ingest, runs the same code path as a real FineWeb-Edu or Cosmopedia corpus. With
``inject_bad_rows`` a few rows of each kind of damage are added to the first shard, so the
quarantine table has something to show.
"""

from __future__ import annotations

import json

import pyarrow as pa

from lakehouse import tables
from lakehouse.corpora import CorpusSpec
from lakehouse.demo import planted, pystdlib, realistic
from lakehouse.storage import atomic_write_bytes, exists, join, write_parquet

GROUND_TRUTH_FILE = "_meta/ground_truth.parquet"
PLANTED_KINDS = ("planted", "realistic")  # demo kinds that write a ground-truth table


def ground_truth_files(specs: list[CorpusSpec]) -> list[str]:
    """The ground-truth tables of the configured planted corpora that exist on storage."""
    files = [join(spec.uri, GROUND_TRUTH_FILE) for spec in specs
             if spec.demo.get("kind") in PLANTED_KINDS]
    return [f for f in files if exists(f)]


def _split(items: list, n_shards: int) -> list[list]:
    """Contiguous, nearly equal slices (shard i gets items [i*n/k, (i+1)*n/k))."""
    n = len(items)
    return [items[i * n // n_shards:(i + 1) * n // n_shards] for i in range(n_shards)]


PLANTED_PARTS = {"all": ("root", "source", "distractor"), "roots": ("root",),
                 "pool": ("source", "distractor")}


def write_planted(spec: CorpusSpec) -> list[str]:
    """Write the planted corpus, or one part of it.

    ``part: roots`` writes the root documents and the ground truth, naming ``pool_corpus`` as
    the corpus its sources live in; ``part: pool`` (same seed and sizes) writes the sources
    and distractors. Splitting them keeps the roots, which share a log layout, out of the
    retrieval pool, and scores only the documents that have dependencies to find.
    """
    opts = spec.demo
    part = opts.get("part", "all")
    if part not in PLANTED_PARTS:
        raise ValueError(f"corpus {spec.name}: demo part {part!r} is not one of "
                         f"{sorted(PLANTED_PARTS)}")
    pool_corpus = opts.get("pool_corpus", spec.name) if part == "roots" else spec.name
    docs, truth = planted.generate(seed=int(opts.get("seed", 0)),
                                   n_stories=int(opts.get("n_stories", 12)),
                                   n_distractors=int(opts.get("n_distractors", 12)),
                                   corpus=spec.name, pool_corpus=pool_corpus)
    rows = [{"id": d.source_id, "text": d.text, "role": d.role, "domain": d.domain}
            for d in docs if d.role in PLANTED_PARTS[part]]
    shards = _split(rows, int(opts.get("n_shards", 2)))
    if opts.get("inject_bad_rows", False) and shards:
        shards[0] = shards[0] + [
            {"id": "planted-bad-null", "text": None, "role": "bad", "domain": ""},
            {"id": "planted-bad-blank", "text": " \x00\x07 \n ", "role": "bad", "domain": ""},
            {"id": "planted-bad-copy", "text": rows[0]["text"], "role": "bad", "domain": ""},
        ]
    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("role", pa.string()),
                        ("domain", pa.string())])
    written = []
    for i, shard in enumerate(shards):
        path = join(spec.uri, f"shard-{i:05d}.parquet")
        written.append(write_parquet(pa.Table.from_pylist(shard, schema=schema), path))
    if part != "pool":
        write_parquet(tables.from_rows(truth, tables.GROUND_TRUTH),
                      join(spec.uri, GROUND_TRUTH_FILE))
    return written


def write_pystdlib(spec: CorpusSpec) -> list[str]:
    opts = spec.demo
    docs = pystdlib.generate(n_docs=int(opts.get("n_docs", 40)),
                             max_chars=int(opts.get("max_chars", 6000)))
    shards = [[json.dumps(d, ensure_ascii=False).encode("utf-8") for d in part]
              for part in _split(docs, int(opts.get("n_shards", 2)))]
    if opts.get("inject_bad_rows", False) and shards:
        shards[0] = shards[0] + [
            b'{"id": "stdlib-bad-json", "text": "an unterminated record',
            b'{"id": "stdlib-bad-bytes", "text": "caf\xe9 latin-1 bytes"}',
            b'{"id": "stdlib-bad-type", "text": 42}',
        ]
    written = []
    for i, lines in enumerate(shards):
        data = b"".join(line + b"\n" for line in lines)
        path = join(spec.uri, f"shard-{i:05d}.jsonl")
        written.append(atomic_write_bytes(path, lambda fh, data=data: fh.write(data)))
    return written


REALISTIC_KEYS = {"kind", "seed", "n_roots", "n_distractors", "facts_per_root", "boilerplate",
                  "sentences", "families", "n_lookalikes", "n_shards", "inject_bad_rows"}


def write_realistic(spec: CorpusSpec) -> list[str]:
    """Write the realistic planted corpus (one corpus: roots, sources, distractors and, with
    ``n_lookalikes``, a look-alike pool) and its ground truth; see lakehouse.demo.realistic.

    Its documents are meant to serve as roots and pool at once (``roles: [root, pool]``).
    """
    opts = spec.demo
    unknown = set(opts) - REALISTIC_KEYS
    if unknown:
        raise ValueError(f"corpus {spec.name}: unknown realistic demo keys {sorted(unknown)}; "
                         f"known: {sorted(REALISTIC_KEYS)}")
    seed = int(opts.get("seed", 0))
    sizes = {"boilerplate": float(opts.get("boilerplate", 0.2)),
             "sentences": int(opts.get("sentences", 12)), "families": opts.get("families")}
    docs, truth = realistic.generate(seed=seed, n_roots=int(opts.get("n_roots", 24)),
                                     n_distractors=int(opts.get("n_distractors", 24)),
                                     facts_per_root=int(opts.get("facts_per_root", 4)),
                                     corpus=spec.name, **sizes)
    n_look = int(opts.get("n_lookalikes", 0))
    if n_look:
        avoid = {t["surface"] for t in truth}
        docs = docs + realistic.lookalike_docs(seed, n_look, avoid=avoid, **sizes)
    rows = [{"id": d.source_id, "text": d.text, "role": d.role, "domain": d.domain}
            for d in docs]
    shards = _split(rows, int(opts.get("n_shards", 2)))
    if opts.get("inject_bad_rows", False) and shards:
        shards[0] = shards[0] + [
            {"id": "realistic-bad-null", "text": None, "role": "bad", "domain": ""},
            {"id": "realistic-bad-copy", "text": rows[0]["text"], "role": "bad", "domain": ""},
        ]
    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("role", pa.string()),
                        ("domain", pa.string())])
    written = [write_parquet(pa.Table.from_pylist(shard, schema=schema),
                             join(spec.uri, f"shard-{i:05d}.parquet"))
               for i, shard in enumerate(shards)]
    write_parquet(tables.from_rows(truth, tables.GROUND_TRUTH), join(spec.uri, GROUND_TRUTH_FILE))
    return written


WIKIPEDIA_KEYS = {"kind", "part", "roots", "articles", "max_words", "n_shards"}
NATURAL_CONTEXT_FILE = "_meta/natural_context.parquet"


def write_wikipedia(spec: CorpusSpec) -> list[str]:
    """A slice of the real Wikipedia sample (lakehouse.realtext, the gensim wheel's dump):
    ``part: roots`` writes the ``roots`` (``"Title/index"``: later parts of articles, cut at
    ``max_words``), ``part: pool`` every other part of the ``articles``. Beside the shards,
    ``_meta/natural_context.parquet`` names each part's article and the articles it links to,
    so that a kept chunk can be told apart as a part of the root's own article, of one it
    links to, or of another."""
    from lakehouse import realtext

    opts = spec.demo
    unknown = set(opts) - WIKIPEDIA_KEYS
    if unknown:
        raise ValueError(f"corpus {spec.name}: unknown wikipedia demo keys {sorted(unknown)}; "
                         f"known: {sorted(WIKIPEDIA_KEYS)}")
    part = opts.get("part", "roots")
    if part not in ("roots", "pool"):
        raise ValueError(f"corpus {spec.name}: wikipedia demo part must be roots or pool")
    real = realtext.wikipedia(max_words=int(opts.get("max_words", 900)))
    by_title = {d: real.parts_of(d) for d in real.documents()}
    roots = set()
    for ref in opts.get("roots", []):
        title, _, index = str(ref).rpartition("/")
        if title not in by_title or not index.isdigit() or int(index) >= len(by_title[title]):
            raise ValueError(f"corpus {spec.name}: root {ref!r} names no part of the sample "
                             f"(articles: {', '.join(sorted(by_title)[:8])}, ...)")
        roots.add(by_title[title][int(index)].source_id)
    if part == "roots":
        chosen = [p for d in by_title for p in by_title[d] if p.source_id in roots]
    else:
        articles = opts.get("articles", [])
        missing = [a for a in articles if a not in by_title]
        if missing:
            raise ValueError(f"corpus {spec.name}: articles {missing} are not in the sample")
        chosen = [p for a in articles for p in by_title[a] if p.source_id not in roots]
    rows = [{"id": p.source_id, "text": p.text, "article": p.document, "heading": p.heading}
            for p in chosen]
    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("article", pa.string()),
                        ("heading", pa.string())])
    written = [write_parquet(pa.Table.from_pylist(shard, schema=schema),
                             join(spec.uri, f"shard-{i:05d}.parquet"))
               for i, shard in enumerate(_split(rows, int(opts.get("n_shards", 1))))]
    context = pa.table({"id": [r["id"] for r in rows], "article": [r["article"] for r in rows],
                        "links": [sorted(real.links.get(r["article"], ())) for r in rows]})
    write_parquet(context, join(spec.uri, NATURAL_CONTEXT_FILE))
    return written


WRITERS = {"planted": write_planted, "pystdlib": write_pystdlib, "realistic": write_realistic,
           "wikipedia": write_wikipedia}


def write_demo_corpus(spec: CorpusSpec) -> list[str]:
    """Generate a demo corpus's shard files at ``spec.uri``; returns the files written."""
    kind = spec.demo.get("kind")
    if kind not in WRITERS:
        raise ValueError(f"corpus {spec.name}: demo kind {kind!r} is not one of {sorted(WRITERS)}")
    return WRITERS[kind](spec)
