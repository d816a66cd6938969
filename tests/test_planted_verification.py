"""The verification signal on `planted` with SmolLM2: the true source cuts the entropy at
planted tokens, a distractor on the same topic does not."""

from __future__ import annotations

import numpy as np
import pytest

from lakehouse.dependencies import relative_gain, verified
from lakehouse.ids import doc_id
from lakehouse.planted_eval import planted_token_spans
from models.scoring import ScoringConfig, score_sequences
from models.tokenize import tokenize_texts
from models.verification import group_pairs, verify_grouped


@pytest.mark.slow
def test_true_sources_verify_and_same_topic_distractors_do_not(smollm2):
    from lakehouse.demo import planted

    model, tokenizer = smollm2
    docs, truth = planted.generate(seed=0, n_stories=6, n_distractors=6)
    ids = {doc_id("planted", d.source_id, d.text): d for d in docs}
    names = list(ids)
    toks = dict(zip(names, tokenize_texts(tokenizer, [ids[n].text for n in names]),
                    strict=True))
    spans = planted_token_spans(truth, {n: (t.char_start, t.char_end) for n, t in toks.items()})
    roots = sorted({s.root_doc_id for s in spans})
    distractor_of = {}  # a distractor from the same domain as the root
    for r in roots:
        distractor_of[r] = next(n for n in names if ids[n].role == "distractor"
                                and ids[n].domain == ids[r].domain)
    cfg = ScoringConfig(window=2048, token_budget=4096, block_size=256)
    alone = dict(zip(roots, score_sequences(model, [toks[r].input_ids for r in roots], cfg),
                     strict=True))
    # anchor: the last token of each planted span (inside a name or code, never its start)
    rows = [(r, s.token_end - 1, src) for s in spans
            for r, src in [(s.root_doc_id, s.source_doc_id)]]
    chunks = names  # whole documents serve as the chunks here
    d_index, pos, c_index = [], [], []
    for r, t, src in rows:
        for c in (src, distractor_of[r]):
            d_index.append(roots.index(r))
            pos.append(t)
            c_index.append(chunks.index(c))
    pairs = group_pairs(d_index, pos, c_index)
    scores, _ = verify_grouped(model, [toks[r].input_ids for r in roots],
                               [toks[c].input_ids for c in chunks], pairs, cfg)
    kept = {"source": [], "distractor": []}
    gains = {"source": [], "distractor": []}
    for s in scores:
        r, c = roots[s.pair.doc], chunks[s.pair.chunk]
        h = alone[r].entropy[s.pair.positions]
        di = relative_gain(h, s.entropy)
        kind = "distractor" if c == distractor_of[r] else "source"
        kept[kind].extend(verified(di, 0.4).tolist())
        gains[kind].extend(di.tolist())
    src_rate, dis_rate = np.mean(kept["source"]), np.mean(kept["distractor"])
    print(f"\nverified at eps 0.4: true source {src_rate:.2f} (mean dI "
          f"{np.nanmean(gains['source']):.2f}), same-topic distractor {dis_rate:.2f} "
          f"(mean dI {np.nanmean(gains['distractor']):.2f}) over {len(kept['source'])} spans")
    assert src_rate >= 0.6 and dis_rate <= 0.2 and src_rate > 3 * dis_rate
