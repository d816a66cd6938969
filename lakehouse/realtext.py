"""Real long documents with a natural ground truth: Wikipedia articles and the Python docs.

Each long document is cut into parts of at most ``max_words`` words at its top-level
sections. A later part of a document is a root whose natural context is the other parts of
its own document and the parts of the documents its document links to (wikilinks between
the articles of a real dump; Sphinx cross-references between the pages of the Python 3.11
documentation). Both corpora ship with packages the registries carry:

- ``wikipedia()``: the gensim 4.4.0 wheel holds a shortened real dump (106 full articles).
- ``python_docs()``: Debian's ``python3.11-doc`` installs the reST sources of the docs.

Pure Python (standard library plus ``mwparserfromhell``): no Dagster, no models.
"""

from __future__ import annotations

import bz2
import os
import posixpath
import re
import unicodedata
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Literal

REPO = Path(__file__).resolve().parent.parent
GENSIM_VERSION = "4.4.0"
GENSIM_DUMP = ("gensim/test/test_data/"
               "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2")
GENSIM_ENV = "ELONG_GENSIM_WHEEL"
PYDOCS_ROOT = Path("/usr/share/doc/python3.11/html/_sources")

Relation = Literal["own", "linked", "other"]


# --------------------------------------------------------------------------- data model


@dataclass(frozen=True)
class Part:
    """One part of a real document: a run of whole sections (or a piece of a long one)."""

    source_id: str  # stable, unique: "<document slug>/<index:03d>", e.g. "albert-einstein/004"
    document: str  # the document (article title / doc page path) it belongs to
    index: int  # 0-based position of the part within its document
    heading: str  # section heading(s) it starts with ("" for the lead)
    text: str  # plain text (no markup), paragraphs separated by blank lines


@dataclass(frozen=True)
class RealCorpus:
    """Parts of real documents and the links between the documents (the natural context)."""

    name: str  # "wikipedia" | "pydocs"
    parts: tuple[Part, ...]  # in document order, then part order
    # document -> documents it links to (only documents present, never itself)
    links: Mapping[str, frozenset[str]] = field(hash=False)

    @cached_property
    def _by_document(self) -> dict[str, list[Part]]:
        """Parts grouped by document, in corpus order (built once, on first use)."""
        out: dict[str, list[Part]] = {}
        for p in self.parts:
            out.setdefault(p.document, []).append(p)
        return out

    def documents(self) -> list[str]:
        """The documents that have at least one part, in corpus order."""
        return list(self._by_document)

    def parts_of(self, document: str) -> list[Part]:
        """The parts of one document in order (empty for an unknown document)."""
        return list(self._by_document.get(document, ()))

    def natural(self, root: Part, other: Part) -> Relation:
        """How ``other`` relates to ``root``: its context by construction or not.

        "own": another part of the root's document; "linked": a part of a document the
        root's document links to (one direction only: being linked *from* another document
        does not make that document context); "other": anything else. A part is not its own
        context, so asking about the root itself raises ValueError.
        """
        if other.source_id == root.source_id:
            raise ValueError(f"{root.source_id} is the root itself, not context of it")
        if other.document == root.document:
            return "own"
        if other.document in self.links.get(root.document, frozenset()):
            return "linked"
        return "other"

    def n_links(self) -> int:
        """Directed document links in total."""
        return sum(len(v) for v in self.links.values())


# --------------------------------------------------------------------------- cutting


def n_words(text: str) -> int:
    """Whitespace words: the unit of max_words / min_words (no tokenizer needed here)."""
    return len(text.split())


_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)\]]*\s+|\n+")


def split_sentences(paragraph: str) -> list[str]:
    """Sentences (or lines) of a paragraph, for splitting a paragraph longer than a part.

    Cuts after ., ! or ? (plus closing quotes or brackets) followed by whitespace, and at
    line breaks (list items, code lines); nothing is lost but the whitespace at the cuts.
    """
    out, start = [], 0
    for m in _SENTENCE_END.finditer(paragraph):
        piece = paragraph[start:m.start() + len(m.group(0).rstrip())].strip()
        if piece:
            out.append(piece)
        start = m.end()
    tail = paragraph[start:].strip()
    if tail:
        out.append(tail)
    return out


def _hard_split(text: str, max_words: int) -> list[str]:
    """A unit longer than max_words with no sentence end in it, cut every max_words words."""
    words = text.split()
    return [" ".join(words[i:i + max_words]) for i in range(0, len(words), max_words)]


def pack_units(units: Sequence[str], max_words: int, joiner: str) -> list[str]:
    """Pack consecutive units (each at most max_words) into balanced runs of <= max_words.

    The number of runs is the fewest that can hold the words; each run closes when the
    next unit would overflow it or would take it further from the even share (total / runs)
    than stopping does, so a 1,000-word section becomes two halves, not 900 + 100.
    """
    sizes = [n_words(u) for u in units]
    total = sum(sizes)
    if total <= max_words:
        return [joiner.join(units)] if units else []
    target = total / -(-total // max_words)
    runs: list[str] = []
    cur: list[str] = []
    cw = 0
    for unit, w in zip(units, sizes, strict=True):
        if cur and (cw + w > max_words or (cw + w > target and cw + w - target > target - cw)):
            runs.append(joiner.join(cur))
            cur, cw = [], 0
        cur.append(unit)
        cw += w
    if cur:
        runs.append(joiner.join(cur))
    return runs


def _bounded_paragraphs(paragraphs: Iterable[str], max_words: int) -> list[str]:
    """Paragraphs of at most max_words each: a longer one splits at sentence ends."""
    out: list[str] = []
    for para in paragraphs:
        if n_words(para) <= max_words:
            out.append(para)
            continue
        units: list[str] = []
        for sentence in split_sentences(para):
            units.extend([sentence] if n_words(sentence) <= max_words
                         else _hard_split(sentence, max_words))
        out.extend(pack_units(units, max_words, " "))
    return out


@dataclass
class _Piece:
    """A part under construction: text, words, and the section headings it contains."""

    headings: list[str]  # first: the heading it starts in; then headings of sections begun in it
    text: str
    words: int

    def absorb(self, other: _Piece, starts_section: bool) -> None:
        """Append ``other`` (the next piece) to this one."""
        if starts_section and other.headings[0]:
            self.headings.append(other.headings[0])
        self.text = f"{self.text}\n\n{other.text}"
        self.words += other.words


def cut_sections(sections: Sequence[tuple[str, Sequence[str]]], max_words: int = 900,
                 min_words: int = 60) -> list[tuple[str, str]]:
    """(heading, text) parts of a document given as (heading, paragraphs) sections.

    A section longer than max_words splits at paragraph boundaries into balanced pieces (a
    paragraph longer than max_words splits at sentence ends); consecutive pieces merge while
    the part stays <= max_words (so short sections join); a part still under min_words
    merges into its predecessor when that fits, otherwise it is dropped. A part's heading is
    the heading it starts under followed by those of the sections begun inside it, joined
    by " / " (the lead's empty heading leaves no trace). Deterministic.
    """
    if min_words > max_words:
        raise ValueError(f"min_words {min_words} > max_words {max_words}")
    pieces: list[tuple[_Piece, bool]] = []  # (piece, starts its section)
    for heading, paragraphs in sections:
        paras = [p.strip() for p in paragraphs if p.strip()]
        for k, text in enumerate(pack_units(_bounded_paragraphs(paras, max_words),
                                            max_words, "\n\n")):
            pieces.append((_Piece([heading], text, n_words(text)), k == 0))
    merged: list[_Piece] = []
    for piece, starts in pieces:
        if merged and merged[-1].words + piece.words <= max_words:
            merged[-1].absorb(piece, starts)
        else:
            merged.append(piece)
    kept: list[_Piece] = []
    for piece in merged:
        if piece.words >= min_words:
            kept.append(piece)
        elif kept and kept[-1].words + piece.words <= max_words:
            kept[-1].absorb(piece, True)
    return [(" / ".join(h for h in p.headings if h), p.text) for p in kept]


def slug(name: str) -> str:
    """Lower-case ASCII slug of a document name ("Albert Einstein" -> "albert-einstein")."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-") or "doc"


def build_corpus(name: str, documents: Sequence[tuple[str, Sequence[tuple[str, Sequence[str]]]]],
                 links: Mapping[str, Iterable[str]], max_words: int, min_words: int
                 ) -> RealCorpus:
    """Cut (document, sections) pairs into parts and keep the links between kept documents.

    Source ids are "<slug>/<index:03d>"; two documents with the same slug get "-2", "-3"
    appended in document order, so ids stay unique and stable. A document with no part
    left (all too short) is not in the corpus, and neither are links to it.
    """
    parts: list[Part] = []
    used: dict[str, int] = {}
    for document, sections in documents:
        cut = cut_sections(sections, max_words, min_words)
        if not cut:
            continue
        base = slug(document)
        used[base] = used.get(base, 0) + 1
        s = base if used[base] == 1 else f"{base}-{used[base]}"
        parts.extend(Part(f"{s}/{i:03d}", document, i, heading, text)
                     for i, (heading, text) in enumerate(cut))
    present = {p.document for p in parts}
    kept_links = {doc: frozenset(t for t in links.get(doc, ()) if t in present and t != doc)
                  for doc in dict.fromkeys(p.document for p in parts)}
    return RealCorpus(name, tuple(parts), kept_links)


def _clean_paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs, each line stripped and inner spaces collapsed."""
    paras: list[str] = []
    cur: list[str] = []
    for line in text.split("\n"):
        line = re.sub(r"[ \t\u00a0]+", " ", line).strip()
        if line:
            cur.append(line)
        elif cur:
            paras.append("\n".join(cur))
            cur = []
    if cur:
        paras.append("\n".join(cur))
    return paras


# --------------------------------------------------------------------------- Wikipedia


def gensim_wheel(explicit: str | Path | None = None) -> Path:
    """The gensim 4.4.0 wheel that carries the Wikipedia sample.

    Looks at the explicit argument, then $ELONG_GENSIM_WHEEL, then
    <repo>/.cache/wheels/gensim-4.4.0-*.whl (where `make realtext-data` puts it).
    """
    for candidate in (explicit, os.environ.get(GENSIM_ENV)):
        if candidate:
            path = Path(candidate).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"gensim wheel {path} does not exist")
            return path
    found = sorted((REPO / ".cache" / "wheels").glob(f"gensim-{GENSIM_VERSION}-*.whl"))
    if found:
        return found[-1]
    raise FileNotFoundError(
        f"no gensim {GENSIM_VERSION} wheel (it holds the Wikipedia sample): run "
        f"`pip download --no-deps gensim=={GENSIM_VERSION} -d .cache/wheels` in {REPO} "
        f"(or `make realtext-data`), or set ${GENSIM_ENV} to the wheel's path")


# Sections that are apparatus, not prose about the subject.
DROPPED_SECTIONS = frozenset({
    "references", "external links", "see also", "further reading", "notes", "bibliography",
    "sources", "citations", "footnotes"})
# Tags whose content is not running text (or is markup-heavy: tables, formulas, galleries).
_DROPPED_TAGS = frozenset({
    "ref", "references", "table", "gallery", "math", "chem", "ce", "timeline", "imagemap",
    "score", "graph", "templatedata", "categorytree", "inputbox", "hiero", "syntaxhighlight",
    "source", "includeonly", "noinclude", "mapframe", "maplink", "section", "hr", "caption"})
_LINK_TEMPLATES = frozenset({"main", "main article", "see also", "further", "details",
                             "further information"})
_IMAGE_NAMESPACES = frozenset({"file", "image", "category", "media"})
_WIKI_NAMESPACE_ALIASES = frozenset({"image", "wp", "project", "media"})


def _is_dropped_section(heading: str) -> bool:
    """An apparatus section: one of DROPPED_SECTIONS, or several of them joined by "and"."""
    words = [w for w in re.split(r"\s*(?:,|&|\band\b)\s*", heading.strip().lower()) if w]
    return bool(words) and all(w in DROPPED_SECTIONS for w in words)


def normalize_title(title: str) -> str:
    """A wikilink target as a page title: no #fragment, spaces, first letter upper-cased."""
    title = title.split("#", 1)[0].replace("_", " ")
    title = re.sub(r"\s+", " ", title).strip()
    return title[:1].upper() + title[1:]


def _template_text(template, render: Callable) -> str:
    """Visible text of the few templates that carry prose (units, languages, quotes...).

    Every other template (infoboxes, citations, hatnotes, navboxes) renders as nothing.
    """
    name = str(template.name).strip().lower().replace("_", " ")
    pos = [render(p.value).strip() for p in template.params if not p.showkey]

    def arg(i: int) -> str:
        return pos[i] if len(pos) > i else ""

    if name in {"convert", "cvt"}:
        if arg(1) in {"to", "-", "\u2013", "and", "or", "by", "x", "+/-", "\u00b1"}:
            return f"{arg(0)} {arg(1)} {arg(2)} {arg(3)}".strip()
        return f"{arg(0)} {arg(1)}".strip()
    if name == "lang":
        return arg(1)
    if name.startswith("lang-") or name in {"nowrap", "nobr", "small", "smaller", "big",
                                            "abbr", "mvar", "math", "em", "strong", "var",
                                            "sic", "keypress", "not a typo", "lang-en"}:
        return arg(0)
    if name in {"quote", "blockquote", "cquote", "quotation", "quote box", "poem quote"}:
        for p in template.params:
            if str(p.name).strip() in {"text", "quote", "1"}:
                return render(p.value).strip()
        return ""
    if name in {"transl", "transliteration"}:
        return pos[-1] if pos else ""
    if name == "frac":
        return "/".join(pos)
    if name in {"as of"}:
        return f"As of {arg(0)}".strip()
    if name in {"circa", "c."}:
        return f"c. {arg(0)}".strip()
    return {"'": "'", "ndash": "\u2013", "mdash": "\u2014", "snd": " \u2013 ",
            "spaced ndash": " \u2013 ", "nbsp": " ", "okina": "\u02bb", "=": "=",
            "!": "|", "en dash": "\u2013", "em dash": "\u2014"}.get(name, "")


@cache
def _mw_nodes():
    """mwparserfromhell's node classes, imported on first use (only the Wikipedia reader
    needs the parser)."""
    import mwparserfromhell.nodes

    return mwparserfromhell.nodes


class _WikiText:
    """Plain text of wikitext through mwparserfromhell's node tree.

    strip_code() alone keeps reference contents, table cells, image captions ("thumb|...")
    and category links; this walker drops those and renders everything else as prose.
    """

    def __init__(self, namespaces: Iterable[str]) -> None:
        self.namespaces = {n.lower() for n in namespaces} | _WIKI_NAMESPACE_ALIASES

    def link_target(self, title: str) -> str | None:
        """The article a wikilink points to, or None for another namespace or wiki."""
        title = title.strip()
        if not title:
            return None
        if title.startswith(":"):
            title = title[1:].strip()
            if ":" in title and title.split(":", 1)[0].strip().lower() in self.namespaces:
                return None
        if ":" in title:
            prefix = title.split(":", 1)[0].strip()
            if prefix.lower() in self.namespaces or re.fullmatch(r"[a-z][a-z-]{1,11}", prefix):
                return None
        title = normalize_title(title)
        return title or None

    def render(self, code) -> str:
        """Plain text of a Wikicode (or a node list)."""
        return "".join(self._node(n) for n in code.nodes)

    def _node(self, node) -> str:
        n = _mw_nodes()
        if isinstance(node, n.Text):
            return node.value
        if isinstance(node, n.Tag):
            tag = str(node.tag).strip().lower()
            if tag in _DROPPED_TAGS or node.wiki_markup == "{|":
                return ""
            if tag == "br":
                return "\n"
            if node.wiki_markup in {"*", "#", ";", ":"} or tag in {"li", "dt", "dd"}:
                return "" if node.contents is None else self.render(node.contents)
            if node.self_closing or node.contents is None:
                return ""
            if tag == "nowiki":
                return str(node.contents)
            return self.render(node.contents)
        if isinstance(node, n.Wikilink):
            raw = str(node.title).strip()
            prefix = raw.lstrip(":").split(":", 1)[0].strip().lower() if ":" in raw else ""
            if not raw.startswith(":") and (prefix in _IMAGE_NAMESPACES or (
                    prefix and re.fullmatch(r"[a-z][a-z-]{1,11}", prefix)
                    and node.text is None)):
                return ""  # images, categories, interlanguage links
            return self.render(node.text if node.text is not None else node.title)
        if isinstance(node, n.Template):
            return _template_text(node, self.render)
        if isinstance(node, n.ExternalLink):
            return "" if node.title is None else self.render(node.title)
        if isinstance(node, n.HTMLEntity):
            return node.normalize()
        if isinstance(node, n.Heading):
            return f"\n\n{self.render(node.title).strip()}\n\n"
        return ""  # comments, template arguments


_EMPTY_PARENS = re.compile(r"\(\s*[,;:]?(?:\s*[,;:])*\s*\)")
_MAGIC_WORDS = re.compile(r"__[A-Z]+__")


_REF = re.compile(r"<ref\b[^>]*?/>|<ref\b[^>]*>.*?</ref\s*>", re.DOTALL | re.IGNORECASE)
_INNER_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
_INNER_LINK = re.compile(r"\[\[([^\[\]]*)\]\]")
_HTML_TAG = re.compile(r"</?[a-zA-Z][\w-]*(?:\s[^<>]*)?/?>")


def _unparsed_markup(text: str) -> str:
    """Remove the markup mwparserfromhell leaves as plain text where it gives up.

    On some constructs (a citation whose URL holds a "|", a malformed table) the parser
    keeps the rest of the construct as text; refs, templates (innermost first, so nested
    ones go too), links (File/Category ones entirely, others as their label) and HTML tags
    are removed here with regexes, and stray brackets after them.
    """
    text = _REF.sub("", text)
    text = re.sub(r"<ref\b[^>]*>[^\n]*", "", text, flags=re.IGNORECASE)  # unclosed ref
    while True:
        new = _INNER_TEMPLATE.sub("", text)
        if new == text:
            break
        text = new

    def link(m: re.Match) -> str:
        title, _, label = m.group(1).partition("|")
        prefix = title.split(":", 1)[0].strip().lower() if ":" in title else ""
        if prefix in _IMAGE_NAMESPACES:
            return ""
        return label.rpartition("|")[2] if label else title

    while True:
        new = _INNER_LINK.sub(link, text)
        if new == text:
            break
        text = new
    text = _HTML_TAG.sub("", text)
    return re.sub(r"\[\[|\]\]|\{\{|\}\}", "", text)


def _clean_wiki_text(text: str) -> str:
    """Tidy rendered wikitext: no leftover quotes/brackets, no empty "( ; )", no table rows."""
    text = _unparsed_markup(text)
    text = _MAGIC_WORDS.sub("", text).replace("\u00a0", " ")
    text = re.sub(r"'{2,}", "", text)
    text = re.sub(r"\((?:\s*[,;:])+\s*", "(", text)
    text = re.sub(r"(?:\s*[,;:])+\s*\)", ")", text)
    text = _EMPTY_PARENS.sub("", text)
    text = re.sub(r"[ \t]+([,.;:!?)])", r"\1", text)
    text = re.sub(r"\(\s+", "(", text)
    lines = []
    for line in text.split("\n"):
        s = line.strip()
        if s.startswith(("{|", "|", "!")) or s in {"]]", "}}"}:
            continue
        lines.append(line)
    return "\n".join(lines)


@dataclass(frozen=True)
class WikiPage:
    """One article of the dump as sections of plain paragraphs, with its outgoing links."""

    title: str
    sections: tuple[tuple[str, tuple[str, ...]], ...]
    links: frozenset[str]  # normalized titles (before redirect resolution)


def _iter_dump_pages(stream) -> Iterator[tuple[list[str], str, int, str | None, str]]:
    """(namespace names, title, ns, redirect target, wikitext) per page of a MediaWiki export.

    The namespace names come from <siteinfo>, so links into other namespaces are told apart
    from article titles that happen to contain a colon.
    """
    namespaces: list[str] = []
    ns_uri = ""
    for _event, el in ET.iterparse(stream, events=("end",)):
        tag = el.tag
        if not ns_uri and tag.startswith("{"):
            ns_uri = tag[:tag.index("}") + 1]
        local = tag[len(ns_uri):] if tag.startswith(ns_uri) else tag
        if local == "namespace" and el.text:
            namespaces.append(el.text.strip())
        elif local == "page":
            title = el.findtext(f"{ns_uri}title") or ""
            ns = int(el.findtext(f"{ns_uri}ns") or 0)
            redirect = el.find(f"{ns_uri}redirect")
            target = redirect.get("title") if redirect is not None else None
            text = el.findtext(f"{ns_uri}revision/{ns_uri}text") or ""
            yield namespaces, title, ns, target, text
            el.clear()


def parse_article(title: str, wikitext: str, namespaces: Iterable[str] = ()) -> WikiPage:
    """Sections (cut at level-2 headings, lead first) and wikilink targets of one article.

    Apparatus sections (references, external links, see also, ...) are dropped; deeper
    headings stay inside their section as a line of text. Links are every wikilink of the
    page into the article namespace (including those in infoboxes and the dropped sections:
    all of them are the editors' links from this article) and the targets of the "Main
    article" / "See also" / "Further" hatnotes, without the page itself.
    """
    import mwparserfromhell

    walker = _WikiText(namespaces)
    wikitext = re.sub(r"<!--.*?(?:-->|$)", "", wikitext, flags=re.DOTALL)
    # links by regex over the source: the parser leaves some constructs unparsed
    links = {t for t in (walker.link_target(m.group(1))
                         for m in re.finditer(r"\[\[([^\[\]|]+)", wikitext)) if t}
    # references are dropped from the text anyway; removing them first halves the parse
    code = mwparserfromhell.parse(_REF.sub("", wikitext))
    for template in code.filter_templates(recursive=False):  # "Main article: X" hatnotes
        if str(template.name).strip().lower() in _LINK_TEMPLATES:
            links.update(t for t in (walker.link_target(str(p.value)) for p in template.params
                                     if not p.showkey) if t)
    links.discard(normalize_title(title))
    sections: list[tuple[str, list]] = [("", [])]
    for node in code.nodes:
        if isinstance(node, mwparserfromhell.nodes.Heading) and node.level <= 2:
            heading = _clean_wiki_text(walker.render(node.title)).strip()
            sections.append((re.sub(r"\s+", " ", heading), []))
        else:
            sections[-1][1].append(node)
    out = []
    for heading, nodes in sections:
        if heading and _is_dropped_section(heading):
            continue
        text = _clean_wiki_text("".join(walker._node(n) for n in nodes))
        paras = _clean_paragraphs(text)
        if heading:
            paras = [heading, *paras] if paras else []
        if paras:
            out.append((heading, tuple(paras)))
    return WikiPage(title, tuple(out), frozenset(links))


def _resolve(title: str, redirects: Mapping[str, str]) -> str:
    """Follow redirects (a few hops at most, so a loop cannot hang the reader)."""
    for _ in range(5):
        if title not in redirects:
            break
        title = redirects[title]
    return title


def read_dump(stream) -> tuple[list[WikiPage], dict[str, str]]:
    """Articles (namespace 0, not redirects) and the redirect map of a MediaWiki export."""
    pages, redirects = [], {}
    for namespaces, title, ns, target, text in _iter_dump_pages(stream):
        if ns != 0:
            continue
        if target is None and re.match(r"\s*#redirect", text, re.IGNORECASE):
            m = re.search(r"\[\[([^\]|]+)", text)
            target = m.group(1) if m else None
        if target is not None:
            redirects[normalize_title(title)] = normalize_title(target)
            continue
        pages.append(parse_article(title, text, namespaces))
    return pages, redirects


@cache
def read_wheel_dump(path: str, size: int, mtime_ns: int
                    ) -> tuple[list[WikiPage], dict[str, str]]:
    """The parsed dump inside the wheel at ``path``, parsed once per process and file
    version (``size``, ``mtime_ns``): the demo writes its roots and its pool from it, and
    parsing takes most of the time of ``wikipedia``."""
    with zipfile.ZipFile(path) as zf, zf.open(GENSIM_DUMP) as raw, bz2.open(raw) as stream:
        return read_dump(stream)


def wikipedia(max_words: int = 900, min_words: int = 60,
              wheel: str | Path | None = None) -> RealCorpus:
    """The Wikipedia sample of the gensim wheel cut into parts, with its wikilinks.

    A link names the documents an article links to (redirects resolved, only articles of
    the sample, never itself).
    """
    path = gensim_wheel(wheel).resolve()
    stat = path.stat()
    pages, redirects = read_wheel_dump(str(path), stat.st_size, stat.st_mtime_ns)
    titles = {p.title for p in pages}
    links = {p.title: {t for t in (_resolve(x, redirects) for x in p.links) if t in titles}
             for p in pages}
    return build_corpus("wikipedia", [(p.title, p.sections) for p in pages], links,
                        max_words, min_words)


# --------------------------------------------------------------------------- Python docs

_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1{2,}\s*$")
_DIRECTIVE = re.compile(r"^\.\.\s+(?:(?P<domain>[a-z]+):)?(?P<name>[a-zA-Z][\w-]*)::(?P<args>.*)$")
_LABEL = re.compile(r"^\.\.\s+_(?P<label>`[^`]+`|[^:`][^:]*):(?P<url>.*)$")
_SUBST_DEF = re.compile(r"^\.\.\s+\|[^|]+\|")
_FOOTNOTE = re.compile(r"^\.\.\s+\[(?P<mark>[^\]]+)\]\s*(?P<text>.*)$")
_OPTION = re.compile(r"^:[\w -]+:(\s|$)")
_BULLET = re.compile(r"^(?:[*+-]|#\.|\d+\.|\(?[a-zA-Z0-9]\)|[a-zA-Z]\.)\s+")
_GRID_BORDER = re.compile(r"^\+[-=+:]+\+$")
_SIMPLE_BORDER = re.compile(r"^=+(?:\s+=+)+$")
_SUBST_REF = re.compile(r"(?<![\w|])\|\w[\w.-]*\|_{0,2}(?![\w|])")
_DIRECTIVE_IN_CELL = re.compile(r"\.\.\s+[\w:-]+::")
_OPEN_ROLE = re.compile(r":[A-Za-z][\w:+-]*:`[^`]*$")  # a role continued on the next line
_ROLE = re.compile(r":(?P<role>[A-Za-z][\w+-]*(?::[A-Za-z][\w+-]*)?):"
                   r"`(?P<content>(?:\\.|[^`\\])*)`")
_INLINE = re.compile(
    _ROLE.pattern +
    r"|``(?P<lit>\S(?:.*?\S)??)``"
    r"|`(?P<xref>[^`]+?)`__?"
    r"|`(?P<interp>[^`]+?)`"
    r"|(?<![\w*\\])\*\*(?P<strong>[^\s*](?:.*?[^\s\\])??)\*\*(?![\w*])"
    r"|(?<![\w*\\])\*(?P<emph>[^\s*](?:[^*]*?[^\s*\\])??)\*(?![\w*])"
    r"|(?P<fnref>\s?\[(?:#[\w-]*|\d+|\*)\]_)"
    r"|(?P<subst>(?<![\w|])\|[\w][\w .-]*\|_{0,2}(?![\w|]))"
    r"|\\(?P<esc>.)",
    re.DOTALL)

_PY_OBJECTS = frozenset({
    "function", "class", "method", "exception", "data", "attribute", "decorator",
    "decoratormethod", "classmethod", "staticmethod", "abstractmethod", "coroutinefunction",
    "coroutinemethod", "awaitablefunction", "awaitablemethod", "property"})
_C_OBJECTS = frozenset({"function", "member", "type", "var", "macro", "struct", "union",
                        "enum", "enumerator", "data"})
_SIGNATURES = frozenset({"describe", "object", "cmdoption", "option", "pdbcommand",
                         "envvar", "opcode", "2to3fixer", "program"})
_DROPPED_DIRECTIVES = frozenset({
    "index", "toctree", "highlight", "sectionauthor", "moduleauthor", "codeauthor", "raw",
    "include", "literalinclude", "image", "figure", "tabularcolumns", "testsetup",
    "testcleanup", "contents", "rst-class", "cssclass", "audit-event", "audit-event-table",
    "miscnews", "limited-api-list", "default-role", "default-domain", "role", "sectnum",
    "meta", "namespace", "namespace-push", "namespace-pop", "ifconfig"})
_LITERAL_DIRECTIVES = frozenset({"code-block", "sourcecode", "code", "doctest", "testcode",
                                 "testoutput", "productionlist", "parsed-literal"})
_VERSION_TEXT = {"versionadded": "New in version {}.", "versionchanged": "Changed in version {}.",
                 "deprecated": "Deprecated since version {}."}
_PY_ROLES = frozenset({"func", "meth", "class", "exc", "data", "attr", "const", "obj", "mod"})
_C_ROLES = frozenset({"func", "member", "type", "var", "macro", "data", "struct", "expr"})
_CALL_ROLES = frozenset({"func", "meth", "py:func", "py:meth", "c:func"})


def _indent(line: str) -> int:
    """Leading spaces: reST nests blocks by indentation (tabs are expanded first)."""
    return len(line) - len(line.lstrip(" "))


def _role_parts(content: str) -> tuple[str | None, str]:
    """(explicit title or None, target) of a role's content: "text <target>" or "target"."""
    content = re.sub(r"\\(.)", r"\1", re.sub(r"\s+", " ", content)).strip()
    m = re.fullmatch(r"(?P<title>.*?)\s*<(?P<target>[^<>]+)>", content, re.DOTALL)
    if m and m.group("title"):
        return m.group("title"), m.group("target").strip()
    return None, content


def _py_name(signature: str) -> str | None:
    """The dotted name a Python object directive declares ("str.split(sep)" -> "str.split")."""
    m = re.match(r"\s*(?:(?:async|await|class|exception|abstract|classmethod|staticmethod)\s+)*"
                 r"([A-Za-z_][\w.]*)", signature)
    return m.group(1).rstrip(".") if m else None


def _c_name(signature: str) -> str | None:
    """The identifier a C directive declares ("PyObject* PyList_New(Py_ssize_t)" -> ...)."""
    sig = signature.split("(", 1)[0] if "(" in signature else signature
    names = re.findall(r"[A-Za-z_][\w.]*", sig)
    return names[-1] if names else None


@dataclass
class _Line:
    """A logical line of a reST page: wrapped lines of one paragraph or list item joined."""

    indent: int
    cont: int  # indent of this item's continuation lines (list items: after the marker)
    text: str
    literal: bool


@dataclass
class _RstPage:
    """A reST page after one walk: raw sections, definitions, and cross-references."""

    name: str
    title: str = ""
    sections: list[tuple[str, list[list[_Line]]]] = field(default_factory=list)
    refs: list[tuple[str, str, str | None, str | None]] = field(default_factory=list)


@dataclass
class _Targets:
    """Where each cross-reference target is defined (first definition wins, as in Sphinx)."""

    py: dict[str, str] = field(default_factory=dict)
    c: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    label_titles: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    opcodes: dict[str, str] = field(default_factory=dict)

    def add(self, table: dict[str, str], key: str | None, page: str) -> None:
        """Record a definition unless one came first (pages are walked in sorted order)."""
        if key:
            table.setdefault(key, page)


class _RstWalker:
    """One pass over a reST page: sections and paragraphs, definitions, references.

    Tracks what Sphinx tracks to qualify names: the current module (`.. module::`,
    `.. currentmodule::`) and the enclosing class of nested object directives.
    """

    def __init__(self, name: str, source: str, targets: _Targets) -> None:
        self.page = _RstPage(name)
        self.targets = targets
        self.lines = source.expandtabs(8).splitlines()
        self.styles: list[tuple[str, bool]] = []
        self.module: str | None = None
        self.classes: list[tuple[int, str]] = []  # (directive indent, qualified class name)
        self.paragraph: list[_Line] = []
        self.page.sections.append(("", []))

    # ------------------------------------------------------------------ output
    def flush(self) -> None:
        """End the current paragraph (at a blank line, a heading, a directive)."""
        if self.paragraph:
            for line in self.paragraph:
                for m in _ROLE.finditer(line.text):
                    self.page.refs.append((m.group("role"), m.group("content"),
                                           self.module, self.current_class()))
            self.page.sections[-1][1].append(self.paragraph)
            self.paragraph = []

    def add(self, indent: int, text: str, literal: bool = False) -> None:
        """Add a source line: joined to the previous logical line when it continues it."""
        last = self.paragraph[-1] if self.paragraph else None
        # a list item starts a new line only after another item: inside a paragraph a line
        # that starts with "-" or "+" continues it (reST wants a blank line before a list)
        new_item = bool(_BULLET.match(text)) and last is not None and last.cont != last.indent
        if (not literal and last is not None and not last.literal
                and (indent in (last.indent, last.cont) and not new_item
                     or _OPEN_ROLE.search(last.text) or last.text.count("``") % 2)):
            last.text = f"{last.text} {text}"
            return
        m = _BULLET.match(text) if not literal else None
        self.paragraph.append(_Line(indent, indent + (m.end() if m else 0), text, literal))

    def heading(self, text: str, style: tuple[str, bool]) -> None:
        """A section title: a cut point at the top two levels, else a line of text."""
        self.flush()
        if style not in self.styles:
            self.styles.append(style)
        level = self.styles.index(style)
        text = text.strip()
        for m in _ROLE.finditer(text):
            self.page.refs.append((m.group("role"), m.group("content"), self.module, None))
        if not self.page.title and level == 0:
            self.page.title = text
            self.paragraph = [_Line(0, 0, text, False)]
            self.flush()
        elif level <= 1:
            self.page.sections.append((text, [[_Line(0, 0, text, False)]]))
        else:
            self.paragraph = [_Line(0, 0, text, False)]
            self.flush()

    def current_class(self) -> str | None:
        """The class whose directive body we are in (qualifies nested method names)."""
        return self.classes[-1][1] if self.classes else None

    # ------------------------------------------------------------------ walk
    def walk(self) -> _RstPage:
        """Walk the page once, line by line, and return what was found."""
        lines, n, i = self.lines, len(self.lines), 0
        while i < n:
            line = lines[i]
            s = line.strip()
            if not s:
                self.flush()
                i += 1
                continue
            ind = _indent(line)
            while self.classes and ind <= self.classes[-1][0]:
                self.classes.pop()
            if ind == 0 and (step := self._try_heading(i)):
                i += step
                continue
            if s.startswith(".."):
                i = self._explicit(i, ind, s)
                continue
            if (b := _BULLET.match(s)) and s[b.end():].startswith(".. "):  # "* .. _label:"
                i = self._explicit(i, ind + b.end(), s[b.end():])
                continue
            if s.startswith("__ "):
                i = self._skip_block(i + 1, ind)
                continue
            if _GRID_BORDER.match(s) or _SIMPLE_BORDER.match(s) or _ADORNMENT.match(s):
                i += 1
                continue
            if s.startswith("|") and s.endswith("|") and len(s) > 1:  # a grid table row
                s = _SUBST_REF.sub(" ", s)
                s = _DIRECTIVE_IN_CELL.sub(" ", s.strip("|").replace("|", " "))
                s = re.sub(r"\s+", " ", s).strip()
                if s:
                    self.add(ind, s)
                i += 1
                continue
            if s.startswith(">>>") and not self.paragraph:  # a doctest block: up to a blank
                while i < n and lines[i].strip():
                    self.add(ind, lines[i][min(ind, _indent(lines[i])):].rstrip(), literal=True)
                    i += 1
                self.flush()
                continue
            self.add(ind, s)
            i += 1
            if s.endswith("::"):  # deeper than the paragraph's text (a list item's body)
                i = self._literal_after(i, self.paragraph[-1].cont)
        self.flush()
        return self.page

    def _try_heading(self, i: int) -> int:
        """Lines taken by a section title at line i (overlined or underlined), else 0."""
        lines, n = self.lines, len(self.lines)
        first = lines[i].rstrip()
        m = _ADORNMENT.match(first)
        if m and i + 2 < n and lines[i + 1].strip() and lines[i + 2].rstrip() == first:
            self.heading(lines[i + 1], (m.group(1), True))
            return 3
        if (not m and i + 1 < n and (i == 0 or not lines[i - 1].strip())
                and (u := _ADORNMENT.match(lines[i + 1].rstrip()))
                and len(lines[i + 1].rstrip()) >= min(len(first), 4)):
            self.heading(first, (u.group(1), False))
            return 2
        return 0

    def _skip_block(self, i: int, ind: int) -> int:
        """Skip the indented body of a block that starts above line i at indent ind."""
        while i < len(self.lines) and (not self.lines[i].strip()
                                       or _indent(self.lines[i]) > ind):
            i += 1
        return i

    def _literal_after(self, i: int, parent: int, grammar: bool = False) -> int:
        """Keep the literal block (indented deeper than its paragraph) that follows line i.

        In a grammar (productionlist) the backquotes around token names go.
        """
        lines, n = self.lines, len(self.lines)
        j = i
        while j < n and not lines[j].strip():
            j += 1
        if j >= n or _indent(lines[j]) <= parent:
            return i
        self.flush()
        base = _indent(lines[j])
        while j < n and (not lines[j].strip() or _indent(lines[j]) > parent):
            if lines[j].strip():
                text = lines[j][min(base, _indent(lines[j])):].rstrip()
                self.add(base, text.replace("`", "") if grammar else text, literal=True)
            else:
                self.flush()
            j += 1
        self.flush()
        return j

    def _explicit(self, i: int, ind: int, s: str) -> int:
        """An explicit markup block (directive, label, comment, footnote) at line i."""
        page = self.page.name
        if m := _LABEL.match(s):
            if not m.group("url").strip():
                label = m.group("label").strip("`").strip().lower()
                self.targets.add(self.targets.labels, label, page)
                title = self._title_after(i + 1)
                if title:
                    self.targets.label_titles.setdefault(label, title)
            return self._skip_block(i + 1, ind)
        if _SUBST_DEF.match(s):
            return self._skip_block(i + 1, ind)
        m = _DIRECTIVE.match(s)
        if m is None:
            if fm := _FOOTNOTE.match(s):
                self.flush()
                if fm.group("text"):
                    self.add(ind, fm.group("text"))
                return i + 1  # its indented body follows as ordinary text
            return self._skip_block(i + 1, ind)  # a comment
        self.flush()
        domain, name = m.group("domain") or "", m.group("name").lower()
        args = m.group("args").strip()
        # the directive's head: continued signatures, then options, up to the first blank
        j, signatures, options = i + 1, [args], set()
        lines = self.lines
        while j < len(lines) and lines[j].strip() and _indent(lines[j]) > ind:
            t = lines[j].strip()
            if _OPTION.match(t):
                options.add(t.split(":")[1].strip())
            elif (domain in ("", "py", "c") and (name in _PY_OBJECTS or name in _C_OBJECTS
                                                 or name in _SIGNATURES)):
                signatures.append(t)
            else:
                break
            j += 1
        index = not ({"noindex", "no-index"} & options)
        if domain not in ("", "py", "c", "std"):
            return self._skip_block(j, ind)
        if name in _DROPPED_DIRECTIVES or (name == "only" and "latex" in args):
            return self._skip_block(j, ind)
        if name in {"module", "currentmodule"} and domain in ("", "py"):
            self.module = None if args in ("", "None") else args
            if name == "module" and index:
                self.targets.add(self.targets.py, self.module, page)
            return self._skip_block(j, ind)
        if name in _LITERAL_DIRECTIVES:
            return self._literal_after(j, ind, grammar=name == "productionlist")
        if domain == "c" and name in _C_OBJECTS:
            for sig in signatures:
                if index:
                    self.targets.add(self.targets.c, _c_name(sig), page)
                self.add(ind, sig, literal=True)
            self.flush()
            return j
        if domain in ("", "py") and name in _PY_OBJECTS:
            self._py_object(name, signatures, ind, index)
            return j
        if name in _SIGNATURES:
            for sig in signatures:
                if name == "envvar" and index:
                    self.targets.add(self.targets.env, sig.split()[0] if sig else None, page)
                if name == "opcode" and index:
                    self.targets.add(self.targets.opcodes, sig.split()[0] if sig else None,
                                     page)
                if name != "program" and sig:
                    self.add(ind, sig, literal=True)
            self.flush()
            return j
        if name in _VERSION_TEXT or name == "deprecated-removed":
            version, _, rest = args.partition(" ")
            if name == "deprecated-removed":
                removed, _, rest = rest.partition(" ")
                text = (f"Deprecated since version {version}, will be removed in version "
                        f"{removed}.")
            else:
                text = _VERSION_TEXT[name].format(version)
            self.add(ind, f"{text} {rest}".strip())
            self.flush()
            return j
        if name == "availability":
            self.add(ind, f"Availability: {args}")
            self.flush()
            return j
        if args:  # admonitions, seealso, rubric, topic, tables...: the argument as text
            self.add(ind, args)
            self.flush()
        return j

    def _py_object(self, name: str, signatures: list[str], ind: int, index: bool) -> None:
        """A Python object directive: its signature lines as text, its names as targets."""
        prefix = {"class": "class ", "exception": "exception ", "decorator": "@",
                  "decoratormethod": "@", "classmethod": "classmethod ",
                  "staticmethod": "staticmethod ", "abstractmethod": "abstractmethod ",
                  "coroutinefunction": "coroutine ", "coroutinemethod": "coroutine ",
                  "awaitablefunction": "awaitable ", "awaitablemethod": "awaitable ",
                  "property": "property "}.get(name, "")
        first = None
        for sig in signatures:
            local = _py_name(sig)
            if local is None:
                continue
            cls = self.current_class()
            if cls and not local.startswith(cls + "."):  # nested in a class body
                local = f"{cls}.{local}"
            full = local
            if self.module and not local.startswith(self.module + "."):
                full = f"{self.module}.{local}"
            if index:
                self.targets.add(self.targets.py, full, page=self.page.name)
            first = first or local
            self.add(ind, prefix + sig, literal=True)
        self.flush()
        if name in {"class", "exception"} and first:
            self.classes.append((ind, first))

    def _title_after(self, i: int) -> str | None:
        """The section title right after a label (for :ref: without an explicit title)."""
        lines, n = self.lines, len(self.lines)
        while i < n and (not lines[i].strip() or _LABEL.match(lines[i].strip())):
            i += 1
        if i + 1 < n and _ADORNMENT.match(lines[i].rstrip()) and i + 2 < n:
            return lines[i + 1].strip()
        if i + 1 < n and lines[i].strip() and _ADORNMENT.match(lines[i + 1].rstrip()):
            return lines[i].strip()
        return None


class _RstText:
    """Inline reST to readable text, and cross-references to the pages defining them."""

    def __init__(self, targets: _Targets, titles: Mapping[str, str]) -> None:
        self.targets = targets
        self.titles = titles  # page -> its title (raw reST)
        self.page = ""  # the page being converted (:doc: paths are relative to it)

    def resolve(self, page: str, role: str, content: str, module: str | None,
                cls: str | None) -> str | None:
        """The page a role points to, or None when it points nowhere known."""
        _, target = _role_parts(content)
        target = target.lstrip("~!")
        domain, _, kind = role.rpartition(":")
        if role in {"ref", "std:ref"}:
            return self.targets.labels.get(target.lower())
        if role in {"doc", "std:doc"}:
            path = target[1:] if target.startswith("/") else posixpath.join(
                posixpath.dirname(page), target)
            path = posixpath.normpath(path)
            return path if path in self.titles else None
        if role in {"term", "std:term"}:
            return "glossary" if "glossary" in self.titles else None
        if role == "envvar":
            return self.targets.env.get(target)
        if role == "opcode":
            return self.targets.opcodes.get(target)
        if domain == "c" and kind in _C_ROLES:
            return self.targets.c.get(target.removesuffix("()"))
        if domain in ("", "py") and kind in _PY_ROLES:
            return self._py(target.removesuffix("()"), module, cls)
        return None

    def _py(self, target: str, module: str | None, cls: str | None) -> str | None:
        """Sphinx's order: exact name, then qualified by the class, the module, both;
        a leading "." searches for the name as a suffix."""
        dotted = target.startswith(".")
        target = target.lstrip(".")
        if not target:
            return None
        py = self.targets.py
        candidates = [target]
        if cls:
            candidates.append(f"{cls}.{target}")
        if module:
            candidates.append(f"{module}.{target}")
            if cls:
                candidates.append(f"{module}.{cls}.{target}")
        for c in candidates:
            if c in py:
                return py[c]
        if dotted:
            suffix = "." + target
            for name in sorted(py):
                if name.endswith(suffix):
                    return py[name]
        return None

    def role_text(self, role: str, content: str) -> str:
        """What Sphinx shows for a role: its explicit title, or the target made readable."""
        title, target = _role_parts(content)
        if title is not None:
            return title
        kind = role.rpartition(":")[2]
        if kind == "ref":
            t = self.targets.label_titles.get(target.lower())
            return self.inline(t) if t else target.replace("-", " ")
        if kind == "doc":
            page = self.resolve(self.page, role, target, None, None)
            return self.inline(self.titles[page]) if page and self.titles[page] else target
        if kind in {"pep", "rfc"}:
            return f"{kind.upper()} {target.split('#')[0]}"
        if kind in {"samp", "file"}:  # {variable} parts show in italics
            return re.sub(r"(?<!\\)[{}]", "", target)
        shown = target
        if shown.startswith("~"):
            shown = shown[1:].rpartition(".")[2]
        shown = shown.lstrip("!.")
        if role in _CALL_ROLES and not shown.endswith(")"):
            shown += "()"
        return shown

    def inline(self, text: str) -> str:
        """reST inline markup to text: roles, literals, emphasis, references, escapes."""

        def sub(m: re.Match) -> str:
            g = m.groupdict()
            if g["role"] is not None:
                return self.role_text(g["role"], g["content"])
            if g["lit"] is not None:
                return g["lit"]
            if g["xref"] is not None:
                t, _ = _role_parts(g["xref"])
                return t if t is not None else g["xref"]
            for key in ("interp", "strong", "emph"):
                if g[key] is not None:
                    return g[key]
            if g["esc"] is not None:
                return "" if g["esc"] in " \n" else g["esc"]
            return ""  # footnote references and substitutions

        return _INLINE.sub(sub, text)

    def roles_only(self, text: str) -> str:
        """Literal text keeps its characters; only roles (rare there) become their text."""
        return _ROLE.sub(lambda m: self.role_text(m.group("role"), m.group("content")), text)

    def paragraph(self, lines: Sequence[_Line]) -> str:
        """One paragraph of plain text: prose lines converted, literal lines kept."""
        out = []
        for line in lines:
            if line.literal:
                out.append(self.roles_only(line.text).rstrip())
            else:
                text = self.inline(line.text).strip()
                if text.endswith("::"):  # "Example::" shows "Example:", "text ::" shows "text"
                    head = text[:-2]
                    text = head.rstrip() + (":" if head and not head[-1].isspace() else "")
                text = re.sub(r"[ \t]+", " ", text).strip()
                if text:
                    out.append(text)
        return "\n".join(line for line in out if line.strip())


def read_pydocs(root: str | Path = PYDOCS_ROOT
                ) -> tuple[list[tuple[str, str, list[tuple[str, list[str]]]]],
                           dict[str, set[str]]]:
    """Every page of the docs as (name, title, sections of paragraphs) and its links.

    Two passes: the first walks every page (sections, definitions, references with their
    module and class context), the second turns markup into text and resolves references
    to the pages that define their targets (only links to other pages are kept).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"no Python docs sources at {root}: install them with "
            "`apt-get install python3.11-doc`")
    targets = _Targets()
    pages: list[_RstPage] = []
    for path in sorted(root.rglob("*.rst.txt")):
        name = path.relative_to(root).as_posix().removesuffix(".rst.txt")
        source = path.read_text(encoding="utf-8", errors="replace")
        pages.append(_RstWalker(name, source, targets).walk())
    titles = {p.name: p.title for p in pages}
    conv = _RstText(targets, titles)
    out, links = [], {}
    for p in pages:
        conv.page = p.name
        sections = []
        for heading, paragraphs in p.sections:
            paras = [t for t in (conv.paragraph(par) for par in paragraphs) if t]
            sections.append((conv.inline(heading).strip() if heading else "", paras))
        out.append((p.name, conv.inline(p.title).strip(), sections))
        found = {conv.resolve(p.name, *ref) for ref in p.refs}
        links[p.name] = {t for t in found if t and t != p.name}
    return out, links


def python_docs(max_words: int = 900, min_words: int = 60, min_doc_words: int = 2000,
                root: str | Path = PYDOCS_ROOT) -> RealCorpus:
    """The Python 3.11 documentation: pages of >= min_doc_words words cut into parts.

    A page is cut at its top-level sections (the first heading level below the page
    title); links are its cross-references (:ref:, :doc:, :mod:, :func:, :class:, :term:
    ...) that resolve to another kept page.
    """
    pages, links = read_pydocs(root)
    kept = [(name, sections) for name, _title, sections in pages
            if sum(n_words(t) for _h, paras in sections for t in paras) >= min_doc_words]
    return build_corpus("pydocs", kept, links, max_words, min_words)
