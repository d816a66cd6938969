"""The default rules on real roots (SmolLM2 + MiniLM, no Dagster): later parts of real
Wikipedia articles, a pool of the other parts of their articles and of unrelated articles
that share words with them. What is kept must come from the root's own (or a linked)
article, and every root must keep something: the claims bench/realtext measures at scale."""

from __future__ import annotations

import pytest

ARTICLES = ["Aardvark", "Aardwolf", "Algeria", "Apollo 11"]
ROOTS = ["Aardvark/1", "Aardvark/3", "Apollo 11/4"]


@pytest.mark.slow  # about 2-4 minutes on 2 CPU cores: 3 roots of <= 400 words, 43 passes
def test_default_rules_keep_parts_of_the_roots_own_articles():
    from bench.planted import Corpus, prepare
    from bench.realtext import PassCache, RealSetup, decision_of, run_stages
    from lakehouse import realtext
    from lakehouse.dependencies import decide
    from lakehouse.ids import doc_id
    from lakehouse.normalize import clean_text
    from models.registry import load_embedder, load_scorer
    from orchestration.config import load_config

    try:
        real = realtext.wikipedia(max_words=400)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    config = load_config(None)
    texts, part_of, titles, ids = {}, {}, {}, {}
    for a in ARTICLES:
        for p in real.parts_of(a):
            text = clean_text(p.text)
            i = doc_id("wikipedia", p.source_id, text)
            texts[i], part_of[i] = text, (p.document, p.index)
            titles[i] = p.source_id
            ids[f"{a}/{p.index}"] = i
    roots = sorted(ids[r] for r in ROOTS)
    corpus = Corpus("wikipedia:root", texts, roots, roots, sorted(set(texts) - set(roots)), [])
    setup = RealSetup(corpus, "root", part_of, dict(real.links), titles)
    model, tok = load_scorer(config.models.scorer)
    emb = load_embedder(config.models.embedder)
    prep = prepare(corpus, model, tok)
    st = run_stages(setup, prep, config, model, emb, PassCache("test", enabled=False), {},
                    log=lambda *a: None)
    v = st.verification
    table, stats = decide(st.inputs, v.rows, v.passes, decision_of(config))
    kept = [r for r in table.to_pylist() if r["verified"]]
    relation = {(r["doc_id"], r["chunk_doc_id"]): setup.relation(r["doc_id"], r["chunk_doc_id"])
                for r in kept}
    print(f"\n{len(kept)} kept rows of {table.num_rows}, pairs {relation}, "
          f"thresholds {stats['thresholds']}")
    # two of the three roots keep a part of their own article, and nothing else is kept
    # (bench/realtext: 10 of 12 roots at 900 words; one root here keeps nothing)
    assert len({d for d, _ in relation}) >= 2
    assert set(relation.values()) <= {"own", "linked"}
    assert stats["copies_kept"] == 0
