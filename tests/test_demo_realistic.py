"""The realistic planted corpus: deterministic, free prose with recurring lines, and ground
truth that points at real spans whose text the source introduces."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lakehouse.corpora import CorpusSpec
from lakehouse.demo import GROUND_TRUTH_FILE, ground_truth_files, realistic, write_demo_corpus
from lakehouse.ids import doc_id
from lakehouse.normalize import clean_text


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _units(text: str) -> set[str]:
    return {u for u in re.split(r"(?<=[.!?\"])\s+|\n+", text) if u}


def test_written_twice_gives_the_same_bytes_and_a_ground_truth_file(tmp_path):
    outputs = []
    for n in range(2):
        spec = CorpusSpec("realistic", str(tmp_path / str(n)),
                          demo={"kind": "realistic", "n_roots": 8, "n_distractors": 4,
                                "n_lookalikes": 30, "n_shards": 2, "inject_bad_rows": True})
        write_demo_corpus(spec)
        outputs.append(_files(tmp_path / str(n)))
        assert ground_truth_files([spec]) == [str(tmp_path / str(n) / GROUND_TRUTH_FILE)]
    assert outputs[0] == outputs[1]
    assert sorted(outputs[0]) == [GROUND_TRUTH_FILE, "shard-00000.parquet",
                                  "shard-00001.parquet"]
    rows = [r for f in sorted((tmp_path / "0").glob("shard-*.parquet"))
            for r in pq.read_table(f).to_pylist()]
    roles = Counter(r["role"] for r in rows)
    assert roles["root"] == roles["source"] == 8 and roles["distractor"] == 4
    assert roles["lookalike"] + roles["unrelated"] == 30 and roles["bad"] == 2


def test_unknown_demo_keys_are_refused(tmp_path):
    spec = CorpusSpec("realistic", str(tmp_path), demo={"kind": "realistic", "n_stories": 3})
    with pytest.raises(ValueError, match="n_stories"):
        write_demo_corpus(spec)


def test_seed_changes_content():
    a, _ = realistic.generate(seed=1, n_roots=4, n_distractors=1)
    b, _ = realistic.generate(seed=2, n_roots=4, n_distractors=1)
    assert [d.text for d in a] != [d.text for d in b]


@pytest.mark.parametrize("facts_per_root", [1, 4, 5])
def test_ground_truth_points_at_first_uses_that_the_source_introduces(facts_per_root):
    docs, truth = realistic.generate(seed=0, n_roots=24, n_distractors=24,
                                     facts_per_root=facts_per_root)
    by_id = {doc_id("realistic", d.source_id, d.text): d for d in docs}
    assert len(truth) == 24 * facts_per_root
    assert len({d.domain for d in docs}) == 4  # every template family is used
    for row in truth:
        root, source = by_id[row["root_doc_id"]], by_id[row["source_doc_id"]]
        assert root.role == "root" and source.role == "source"
        assert root.domain == source.domain
        assert clean_text(root.text) == root.text  # ingest keeps the offsets valid
        assert root.text[row["char_start"]:row["char_end"]] == row["surface"]
        assert row["surface"] in source.text
        assert row["surface"] not in root.text[:row["char_start"]]
    unique = {r["surface"] for r in truth if r["kind"] != "year"}
    for d in docs:  # only a story's own source and root name its entities
        if d.role == "distractor":
            assert not any(s in d.text for s in unique)
    for root_id in {r["root_doc_id"] for r in truth}:
        assert len({r["kind"] for r in truth if r["root_doc_id"] == root_id}) \
            == facts_per_root


def test_the_boilerplate_share_controls_how_much_text_recurs():
    shares = {}
    for boilerplate in (0.0, 0.3):
        docs, _ = realistic.generate(seed=0, boilerplate=boilerplate)
        counts = Counter(u for d in docs for u in _units(d.text))
        total = sum(counts.values())
        shares[boilerplate] = sum(c for c in counts.values() if c >= 3) / total
    assert shares[0.0] < 0.05  # fresh prose almost never repeats
    assert shares[0.3] > 0.2


def test_prose_is_not_a_log_and_documents_have_a_few_hundred_words():
    docs, _ = realistic.generate(seed=0, n_roots=8, n_distractors=8)
    words = [len(d.text.split()) for d in docs]
    assert min(words) >= 150 and max(words) <= 400
    for d in docs:  # no line-per-entry layout: paragraphs of several sentences
        paras = [p for p in d.text.split("\n\n") if len(p.split()) > 12]
        assert len(paras) >= 3


def test_lookalikes_are_deterministic_prefix_stable_and_never_name_planted_entities():
    _, truth = realistic.generate(seed=0)
    planted = {r["surface"] for r in truth if r["kind"] != "year"}
    pool = realistic.lookalike_docs(seed=0, n_docs=2000)
    assert pool == realistic.lookalike_docs(seed=0, n_docs=2000)
    assert pool[:300] == realistic.lookalike_docs(seed=0, n_docs=300)
    roles = Counter(d.role for d in pool)
    assert 0.15 < roles["unrelated"] / len(pool) < 0.35
    assert {d.domain for d in pool if d.role == "lookalike"} == set(realistic.FAMILIES)
    assert len({d.source_id for d in pool}) == len(pool)
    text = "\n".join(d.text for d in pool)
    assert not [s for s in planted if s in text]


def test_lookalikes_at_twenty_thousand_documents_take_seconds():
    import time

    start = time.perf_counter()
    pool = realistic.lookalike_docs(seed=1, n_docs=20_000)
    assert len(pool) == 20_000 and time.perf_counter() - start < 20


@pytest.mark.slow
def test_ground_truth_char_spans_are_token_spans_of_the_scorer_tokenizer(smollm2):
    from lakehouse.spans import char_span_to_tokens

    _, tokenizer = smollm2
    docs, truth = realistic.generate(seed=0, n_roots=8, n_distractors=0)
    by_id = {doc_id("realistic", d.source_id, d.text): d for d in docs}
    for row in truth:
        text = by_id[row["root_doc_id"]].text
        enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
        start, end = char_span_to_tokens(enc["offset_mapping"], row["char_start"],
                                         row["char_end"])
        assert tokenizer.decode(enc["input_ids"][start:end]).strip() == row["surface"]
