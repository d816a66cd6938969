"""The demo corpora are deterministic, and the planted ground truth points at real spans."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lakehouse.corpora import CorpusSpec
from lakehouse.demo import GROUND_TRUTH_FILE, planted, pystdlib, write_demo_corpus
from lakehouse.ids import doc_id
from lakehouse.normalize import clean_text


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("kind,fmt", [("planted", "parquet"), ("pystdlib", "jsonl")])
def test_demo_corpus_files_are_identical_when_written_twice(tmp_path, kind, fmt):
    outputs = []
    for n in range(2):
        spec = CorpusSpec(kind, str(tmp_path / str(n)), fmt,
                          demo={"kind": kind, "n_shards": 2, "inject_bad_rows": True})
        write_demo_corpus(spec)
        outputs.append(_files(tmp_path / str(n)))
    assert outputs[0] == outputs[1]
    assert len([f for f in outputs[0] if f.startswith("shard-")]) == 2


def test_planted_seed_changes_content():
    a, _ = planted.generate(seed=1, n_stories=3, n_distractors=1)
    b, _ = planted.generate(seed=2, n_stories=3, n_distractors=1)
    assert [d.text for d in a] != [d.text for d in b]


def test_planted_ground_truth_points_at_the_planted_strings():
    docs, truth = planted.generate(seed=0, n_stories=12, n_distractors=12)
    by_id = {doc_id("planted", d.source_id, d.text): d for d in docs}
    roles = [d.role for d in docs]
    assert roles.count("source") == roles.count("root") == roles.count("distractor") == 12
    assert len(truth) == 12 * 4
    for row in truth:
        root, source = by_id[row["root_doc_id"]], by_id[row["source_doc_id"]]
        assert root.role == "root" and source.role == "source"
        assert clean_text(root.text) == root.text  # ingest keeps spans valid
        assert root.text[row["char_start"]:row["char_end"]] == row["surface"]
        assert row["surface"] in source.text  # the source introduces what the root uses
        # first use: the surface does not occur earlier in the root
        assert row["surface"] not in root.text[:row["char_start"]]
    # distractors never mention a planted fact
    surfaces = {r["surface"] for r in truth if r["kind"] in ("person", "place", "code")}
    for d in docs:
        if d.role == "distractor":
            assert not any(s in d.text for s in surfaces)


def test_planted_documents_have_a_few_hundred_words():
    docs, _ = planted.generate(seed=0, n_stories=6, n_distractors=6)
    words = [len(d.text.split()) for d in docs]
    assert min(words) >= 120 and max(words) <= 400


def test_ground_truth_file_matches_generated_rows(tmp_path):
    spec = CorpusSpec("planted", str(tmp_path), demo={"kind": "planted", "n_stories": 3,
                                                      "n_distractors": 1})
    write_demo_corpus(spec)
    table = pq.read_table(tmp_path / GROUND_TRUTH_FILE)
    _, truth = planted.generate(seed=0, n_stories=3, n_distractors=1)
    assert table.to_pylist() == truth


def test_pystdlib_is_real_prose_one_document_per_module():
    docs = pystdlib.generate(n_docs=20, max_chars=3000)
    assert len(docs) == 20
    ids = [d["id"] for d in docs]
    assert ids == sorted(ids) and len(set(ids)) == 20
    assert all(200 <= len(d["text"]) <= 3000 for d in docs)
    assert all(d["text"].startswith(f"The {d['id'].split(':', 1)[1]} module.") for d in docs)
    assert docs == pystdlib.generate(n_docs=20, max_chars=3000)


@pytest.mark.slow
def test_ground_truth_char_spans_map_to_token_spans_of_the_scorer_tokenizer(smollm2):
    from lakehouse.spans import char_span_to_tokens

    _, tokenizer = smollm2
    docs, truth = planted.generate(seed=0, n_stories=6, n_distractors=0)
    by_id = {doc_id("planted", d.source_id, d.text): d for d in docs}
    for row in truth:
        text = by_id[row["root_doc_id"]].text
        enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
        start, end = char_span_to_tokens(enc["offset_mapping"], row["char_start"],
                                         row["char_end"])
        assert end > start
        decoded = tokenizer.decode(enc["input_ids"][start:end]).strip()
        assert decoded == row["surface"]


def test_wikipedia_slice_writes_roots_apart_from_their_articles_other_parts(tmp_path):
    """The demo's real-text slice: the roots (later parts of real articles) in one corpus,
    every other part of the chosen articles in the pool corpus, and each part's article and
    links beside the shards (what tells an own-article chunk from another)."""
    from lakehouse import realtext
    from lakehouse.demo import NATURAL_CONTEXT_FILE

    try:
        realtext.gensim_wheel()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    opts = {"kind": "wikipedia", "roots": ["Apollo 11/2"], "max_words": 300}
    roots = CorpusSpec("wikipedia", str(tmp_path / "roots"), demo={**opts, "part": "roots"})
    pool = CorpusSpec("wikipedia-pool", str(tmp_path / "pool"),
                      demo={**opts, "part": "pool", "articles": ["Apollo 11", "Apollo 8"]})
    write_demo_corpus(roots)
    write_demo_corpus(pool)
    r = pq.read_table(tmp_path / "roots" / "shard-00000.parquet").to_pylist()
    p = pq.read_table(tmp_path / "pool" / "shard-00000.parquet").to_pylist()
    assert [x["id"] for x in r] == ["apollo-11/002"] and r[0]["article"] == "Apollo 11"
    assert "apollo-11/002" not in {x["id"] for x in p}
    assert {"Apollo 11", "Apollo 8"} == {x["article"] for x in p}
    assert all(len(x["text"].split()) <= 300 for x in r + p)
    ctx = pq.read_table(tmp_path / "pool" / NATURAL_CONTEXT_FILE).to_pylist()
    assert {c["id"] for c in ctx} == {x["id"] for x in p}
    with pytest.raises(ValueError, match="names no part"):
        write_demo_corpus(CorpusSpec("w", str(tmp_path / "bad"),
                                     demo={**opts, "roots": ["Apollo 11/999"]}))
