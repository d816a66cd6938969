"""Real long documents (lakehouse/realtext.py): the cutter, the natural context, both readers.

Fast, no models. The Wikipedia tests need the gensim 4.4.0 wheel (`make realtext-data`, or
$ELONG_GENSIM_WHEEL) and the Python-docs tests Debian's python3.11-doc; each group skips
with the reason when its data is absent.
"""

from __future__ import annotations

import re
import statistics

import pytest

from lakehouse import realtext as rt
from lakehouse.realtext import Part, RealCorpus

MARKUP = ("[[", "]]", "{{", "}}", "<ref", "'''")
ROLE = re.compile(r":[A-Za-z][\w:+-]*:`")


def words(n: int, tag: str = "w") -> str:
    """A sentence-free run of n distinct words (so sizes are exact)."""
    return " ".join(f"{tag}{i}" for i in range(n))


def sentences(n: int, per: int = 10, tag: str = "s") -> str:
    """n sentences of `per` words each, in one paragraph."""
    return " ".join(words(per - 1, f"{tag}{k}x") + " end." for k in range(n))


# --------------------------------------------------------------------------- the cutter


def test_long_section_splits_at_paragraph_boundaries_evenly():
    paras = [words(200, f"p{k}-") for k in range(6)]  # 1,200 words
    parts = rt.cut_sections([("Long", paras)], max_words=900, min_words=60)
    assert len(parts) == 2
    texts = [t for _h, t in parts]
    assert [rt.n_words(t) for t in texts] == [600, 600]  # balanced, not 800 + 400
    assert texts[0] == "\n\n".join(paras[:3]) and texts[1] == "\n\n".join(paras[3:])
    assert [h for h, _t in parts] == ["Long", "Long"]  # a continuation keeps its heading


def test_short_sections_merge_and_headings_are_listed():
    sections = [("", [words(100, "lead")]), ("A", [words(150, "a")]), ("B", [words(200, "b")]),
                ("C", [words(700, "c")])]
    parts = rt.cut_sections(sections, max_words=900, min_words=60)
    assert [(h, rt.n_words(t)) for h, t in parts] == [("A / B", 450), ("C", 700)]
    assert parts[0][1].startswith("lead0 ")  # the lead leads, its heading is empty


def test_tiny_tail_merges_into_predecessor_and_lone_tiny_parts_drop():
    parts = rt.cut_sections([("A", [words(500, "a")]), ("Tail", [words(20, "t")])], 900, 60)
    assert [(h, rt.n_words(t)) for h, t in parts] == [("A / Tail", 520)]
    # a tail that cannot fit into its predecessor is dropped
    parts = rt.cut_sections([("A", [words(890, "a")]), ("Tail", [words(20, "t")])], 900, 60)
    assert [(h, rt.n_words(t)) for h, t in parts] == [("A", 890)]
    assert rt.cut_sections([("", [words(30)])], 900, 60) == []


def test_long_paragraph_splits_at_sentence_ends():
    para = sentences(150)  # 1,500 words, sentences of 10
    parts = rt.cut_sections([("S", [para])], max_words=900, min_words=60)
    assert len(parts) == 2
    assert all(t.endswith("end.") for _h, t in parts)
    assert sum(rt.n_words(t) for _h, t in parts) == 1500
    assert all(rt.n_words(t) <= 900 for _h, t in parts)
    # a "sentence" longer than a part is cut by words
    parts = rt.cut_sections([("S", [words(2000)])], max_words=900, min_words=60)
    assert all(rt.n_words(t) <= 900 for _h, t in parts)
    assert sum(rt.n_words(t) for _h, t in parts) == 2000


def test_split_sentences_keeps_everything():
    text = 'One. "Two!" he said (three?) Four\nfive.'
    got = rt.split_sentences(text)
    assert got == ['One.', '"Two!"', "he said (three?)", "Four", "five."]
    assert " ".join(got).split() == text.split()


def test_build_corpus_ids_links_and_slugs():
    docs = [("Albert Einstein", [("", [words(100)]), ("Life", [words(900)])]),
            ("Albert  einstein", [("", [words(100)])]),  # same slug: gets "-2"
            ("Empty", [("", [words(5)])])]
    links = {"Albert Einstein": {"Albert  einstein", "Albert Einstein", "Empty", "Nowhere"}}
    c = rt.build_corpus("t", docs, links, 900, 60)
    assert [p.source_id for p in c.parts] == ["albert-einstein/000", "albert-einstein/001",
                                              "albert-einstein-2/000"]
    assert c.documents() == ["Albert Einstein", "Albert  einstein"]
    assert c.links == {"Albert Einstein": frozenset({"Albert  einstein"}),
                       "Albert  einstein": frozenset()}
    assert [p.index for p in c.parts_of("Albert Einstein")] == [0, 1]
    assert c.parts_of("Empty") == []


def test_natural_own_linked_other():
    def part(doc: str, i: int) -> Part:
        return Part(f"{rt.slug(doc)}/{i:03d}", doc, i, "", f"text of {doc} {i}")

    a0, a1, b0, c0 = part("A", 0), part("A", 1), part("B", 0), part("C", 0)
    corpus = RealCorpus("t", (a0, a1, b0, c0),
                        {"A": frozenset({"B"}), "B": frozenset(), "C": frozenset({"A"})})
    assert corpus.natural(a1, a0) == "own"
    assert corpus.natural(a1, b0) == "linked"
    assert corpus.natural(a1, c0) == "other"  # C links to A, not A to C: not A's context
    assert corpus.natural(c0, a1) == "linked"
    assert corpus.natural(b0, a0) == "other"
    with pytest.raises(ValueError):
        corpus.natural(a1, a1)


def test_wikitext_to_plain_text():
    src = """{{Infobox person|name=X|birth_place=[[Ulm]]}}
'''Albert''' was a ''physicist''<ref name="a">{{cite web|url=x}}</ref> born in [[Ulm|the city]]
(; {{IPA-de|x}}) and [[Physics]]s. He ran {{convert|5|km}}.<!-- hidden -->
[[File:Einstein.jpg|thumb|A [[caption]] here]]
{| class="wikitable"
|-
| cell || cell
|}
[[Category:Physicists]] [[de:Albert Einstein]]

== Life ==
{{Main|Albert Einstein's early life}}
Text of life.
=== Youth ===
More text.

== References ==
{{Reflist}}
* [[Somebody]] wrote a book.
"""
    page = rt.parse_article("Albert Einstein", src, ["File", "Category"])
    assert [h for h, _p in page.sections] == ["", "Life"]
    lead = "\n\n".join(page.sections[0][1])
    # (a line break inside a paragraph stays: list items keep their own lines)
    assert lead == "Albert was a physicist born in the city\nand Physicss. He ran 5 km."
    assert page.sections[1][1] == ("Life", "Text of life.", "Youth", "More text.")
    assert page.links == {"Ulm", "Physics", "Caption", "Somebody",
                          "Albert Einstein's early life"}


def test_gensim_wheel_lookup(tmp_path, monkeypatch):
    monkeypatch.delenv(rt.GENSIM_ENV, raising=False)
    monkeypatch.setattr(rt, "REPO", tmp_path)
    with pytest.raises(FileNotFoundError, match="pip download --no-deps gensim==4.4.0"):
        rt.gensim_wheel()
    wheel = tmp_path / ".cache" / "wheels" / "gensim-4.4.0-cp311-cp311-x.whl"
    wheel.parent.mkdir(parents=True)
    wheel.write_bytes(b"")
    assert rt.gensim_wheel() == wheel
    other = tmp_path / "g.whl"
    other.write_bytes(b"")
    monkeypatch.setenv(rt.GENSIM_ENV, str(other))
    assert rt.gensim_wheel() == other
    assert rt.gensim_wheel(wheel) == wheel
    with pytest.raises(FileNotFoundError):
        rt.gensim_wheel(tmp_path / "missing.whl")


def test_pydocs_missing_root_says_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install python3.11-doc"):
        rt.python_docs(root=tmp_path / "nowhere")


def test_rst_page_to_text_and_references(tmp_path):
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "functions.rst.txt").write_text(
        ".. _built-in-funcs:\n\nBuilt-in Functions\n==================\n\n"
        ".. function:: open(file, mode='r')\n\n   Open *file*; see :ref:`the list <io>`.\n")
    (tmp_path / "library" / "io.rst.txt").write_text(
        ":mod:`io` --- Core tools\n========================\n\n.. module:: io\n"
        "   :synopsis: Streams.\n\n.. _io:\n\nOverview\n--------\n\n"
        ".. index:: single: file\n\n"
        "Use :func:`open` or :func:`~io.open` and ``x``, **bold**, |version|.\n"
        "See :doc:`functions`, :ref:`built-in-funcs` and :term:`file object`::\n\n"
        "   code :here:\n\n"
        ".. class:: TextIOWrapper(buffer)\n\n   .. method:: read()\n\n      Reads.\n\n"
        "Detail\n^^^^^^\n\nCalls :meth:`TextIOWrapper.read`.\n")
    (tmp_path / "glossary.rst.txt").write_text("Glossary\n========\n\n.. glossary::\n\n"
                                               "   file object\n      A file.\n")
    pages, links = rt.read_pydocs(tmp_path)
    by = {name: (title, sections) for name, title, sections in pages}
    title, sections = by["library/io"]
    assert title == "io --- Core tools"
    assert [h for h, _p in sections] == ["", "Overview"]
    assert sections[1][1] == [
        "Overview",
        "Use open() or open() and x, bold, . See Built-in Functions, Built-in Functions "
        "and file object:",
        "code :here:", "class TextIOWrapper(buffer)", "read()", "Reads.", "Detail",
        "Calls TextIOWrapper.read()."]
    assert links["library/io"] == {"library/functions", "glossary"}
    assert links["library/functions"] == {"library/io"}
    assert by["library/functions"][1][0][1] == [
        "Built-in Functions", "open(file, mode='r')", "Open file; see the list."]


# --------------------------------------------------------------------------- Wikipedia


@pytest.fixture(scope="module")
def wiki() -> RealCorpus:
    try:
        rt.gensim_wheel()
    except FileNotFoundError as e:
        pytest.skip(f"Wikipedia sample absent: {e}")
    return rt.wikipedia()


def test_wikipedia_documents_and_parts(wiki):
    docs = wiki.documents()
    assert len(docs) >= 80
    sizes = [rt.n_words(p.text) for p in wiki.parts]
    assert max(sizes) <= 900 and min(sizes) >= 60
    assert 400 < statistics.median(sizes) <= 900
    ids = [p.source_id for p in wiki.parts]
    assert len(set(ids)) == len(ids)
    assert all(p.source_id.endswith(f"/{p.index:03d}") for p in wiki.parts)
    einstein = wiki.parts_of("Albert Einstein")
    assert len(einstein) >= 5
    assert [p.index for p in einstein] == list(range(len(einstein)))
    assert einstein[0].source_id == "albert-einstein/000" and einstein[0].heading == ""
    assert "theoretical physicist" in einstein[0].text
    assert any("Biography" in p.heading for p in einstein)


def test_wikipedia_text_has_no_markup(wiki):
    for p in wiki.parts:
        for mark in MARKUP:
            assert mark not in p.text, (p.source_id, mark)
        assert "thumb|" not in p.text and "\n\n\n" not in p.text, p.source_id
    headings = {h.lower() for p in wiki.parts for h in p.heading.split(" / ")}
    assert not headings & {"references", "external links", "see also", "notes"}


def test_wikipedia_links(wiki):
    present = set(wiki.documents())
    assert set(wiki.links) == present
    for doc, targets in wiki.links.items():
        assert doc not in targets
        assert targets <= present
    # the sample is the first 106 articles of the dump (A...): few link to each other
    assert wiki.n_links() >= 80
    assert "Angola" in wiki.links["Demographics of Angola"]
    assert wiki.links["Angola"] >= {"Politics of Angola", "Economy of Angola"}


def test_wikipedia_is_deterministic(wiki):
    rt.read_wheel_dump.cache_clear()  # parse the dump again, not the process's copy
    again = rt.wikipedia()
    assert again.parts == wiki.parts
    assert dict(again.links) == dict(wiki.links)


# --------------------------------------------------------------------------- Python docs


@pytest.fixture(scope="module")
def pydocs() -> RealCorpus:
    if not rt.PYDOCS_ROOT.is_dir():
        pytest.skip(f"no Python docs sources at {rt.PYDOCS_ROOT} "
                    "(apt-get install python3.11-doc)")
    return rt.python_docs()


def test_pydocs_documents_and_parts(pydocs):
    assert len(pydocs.documents()) >= 150
    sizes = [rt.n_words(p.text) for p in pydocs.parts]
    assert max(sizes) <= 900 and min(sizes) >= 60
    ids = [p.source_id for p in pydocs.parts]
    assert len(set(ids)) == len(ids)
    functions = pydocs.parts_of("library/functions")
    assert len(functions) >= 5
    assert functions[0].source_id == "library-functions/000"
    assert functions[0].text.startswith("Built-in Functions\n\n")
    assert "open(file, mode='r'" in "\n".join(p.text for p in functions)


def test_pydocs_text_has_no_roles(pydocs):
    for p in pydocs.parts:
        assert not ROLE.search(p.text), (p.source_id, ROLE.search(p.text))
        assert ".. index::" not in p.text and ".. _" not in p.text, p.source_id
        assert "|version|" not in p.text, p.source_id


def test_pydocs_links_resolve(pydocs):
    present = set(pydocs.documents())
    for doc, targets in pydocs.links.items():
        assert doc not in targets and targets <= present
    assert pydocs.n_links() >= 1000
    # :func:`open` is defined on library/functions; :mod:`os` on library/os
    assert "library/functions" in pydocs.links["tutorial/inputoutput"]
    assert "library/os" in pydocs.links["library/os.path"]
    # :term: goes to the glossary
    assert "glossary" in pydocs.links["library/functions"]


def test_pydocs_is_deterministic(pydocs):
    again = rt.python_docs()
    assert again.parts == pydocs.parts
    assert dict(again.links) == dict(pydocs.links)
