"""Stages 1-2 on both planted corpora with the real scorer: the surprise rule puts anchors
on the planted facts at about the paper rule's anchor rate, and retrieval from them finds
the true source."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.slow  # about a minute on 2 CPU cores: scoring only, no verification
@pytest.mark.parametrize("corpus", ["planted", "realistic"])
def test_surprise_anchors_hold_more_planted_spans_than_the_entropy_rule(corpus):
    from bench.planted import _models, _token_table, load_corpus, prepare
    from lakehouse.anchors import AnchorSettings, anchor_table
    from lakehouse.planted_eval import anchor_enrichment, planted_token_spans

    model, tok, _ = _models()
    prep = prepare(load_corpus(corpus, n_roots=8), model, tok)
    c = prep.corpus
    spans = planted_token_spans(c.truth, {d: prep.tokens[d][1:] for d in c.roots})
    got = {}
    for rule in ("entropy", "surprise"):
        table, stats = anchor_table(prep.profiles, _token_table(prep.tokens, c.scored),
                                    c.texts, prep.recurring, AnchorSettings(rule=rule))
        by_doc: dict[str, list[int]] = {}
        for d, t in zip(table["doc_id"].to_pylist(), table["position"].to_pylist(),
                        strict=True):
            by_doc.setdefault(d, []).append(t)
        e = anchor_enrichment(spans, {d: np.asarray(p) for d, p in by_doc.items()},
                              {d: len(prep.tokens[d][0]) for d in c.roots})
        got[rule] = (e.spans_with_anchor, stats["anchors_per_1k_tokens"])
    print(f"\n{corpus}: spans with an anchor / anchors per 1K tokens: {got} of {len(spans)}")
    (ent_spans, ent_rate), (sur_spans, sur_rate) = got["entropy"], got["surprise"]
    assert sur_spans >= ent_spans and sur_spans >= 0.6 * len(spans)
    assert sur_rate <= 2.5 * max(ent_rate, 10.0)  # recall not bought by anchoring everything
