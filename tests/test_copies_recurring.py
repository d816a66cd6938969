"""Recurring-sentence detection and copy classification on hand-made texts and tokens."""

from __future__ import annotations

import numpy as np
import pytest

from lakehouse.copies import COPY, INFORMATIVE, classify_rows, context_copied
from lakehouse.recurring import (
    RecurringSettings,
    indexable,
    normalize_unit,
    recurring_char_share,
    recurring_share,
    recurring_spans,
    recurring_token_mask,
    recurring_units,
    split_units,
    unit_counts,
)

BOILER = "Sign up to our newsletter for the day's top stories."
NAV = "Home > News > Local"


def test_units_are_sentences_and_lines_with_closing_quotes_kept():
    text = f'{NAV}\n\nHe said "no." Then she left! What?  Yes.\nA last line'
    assert [text[a:b] for a, b in split_units(text)] == [
        NAV, 'He said "no."', "Then she left!", "What?", "Yes.", "A last line"]


def test_normalisation_ignores_case_and_spacing_but_not_digits():
    assert normalize_unit("Updated  on 12 May\n2024.") == normalize_unit("updated on 12 may 2024.")
    assert normalize_unit("A cat.") != normalize_unit("A dog.")
    assert normalize_unit("It opened in 1988.") != normalize_unit("It opened in 1828.")


def _corpus():
    return [
        f"{NAV}\n\nThe mayor opened the bridge. {BOILER}",
        f"{NAV}\n\nA storm closed the harbour for two days. {BOILER}",
        f"Rain again in the valley, the third week running. {BOILER.upper()}",
        f"{NAV}\n\nThe mayor opened the bridge. Nobody came.",
    ]


def test_units_in_at_least_min_docs_documents_recur_and_shards_sum_exactly():
    docs = _corpus()
    settings = RecurringSettings(min_docs=3, min_chars=12)
    one, stats = recurring_units([unit_counts(docs, settings)], settings)
    split, _ = recurring_units([unit_counts(docs[:1], settings),
                                unit_counts(docs[1:], settings)], settings)
    assert one.to_pylist() == split.to_pylist()
    assert sorted(one["example"].to_pylist()) == sorted([BOILER, NAV])
    assert one["docs"].to_pylist() == [3, 3]
    assert stats["recurring_units"] == 2 and 0 < stats["recurring_share"] < 1
    # "The mayor opened the bridge." is in two documents only
    two, _ = recurring_units([unit_counts(docs, settings)], RecurringSettings(min_docs=2))
    assert "The mayor opened the bridge." in two["example"].to_pylist()
    off, _ = recurring_units([unit_counts(docs, settings)], RecurringSettings(enabled=False))
    assert off.num_rows == 0


def test_a_document_counts_a_unit_once():
    t = unit_counts([f"{BOILER} {BOILER} {BOILER}"])
    assert t["docs"].to_pylist() == [1]


def test_recurring_spans_and_token_mask():
    docs = _corpus()
    table, _ = recurring_units([unit_counts(docs)])
    hashes = set(table["unit_hash"].to_pylist())
    text = docs[0]
    spans = recurring_spans(text, hashes)
    assert [text[a:b] for a, b in spans] == [NAV, BOILER]
    # whitespace tokens: each word with its leading space, as BPE tokenizers do
    starts, ends = [], []
    pos = 0
    for word in text.replace("\n\n", " ").split(" "):
        starts.append(max(pos - 1, 0))
        ends.append(pos + len(word))
        pos += len(word) + 1
    mask = recurring_token_mask(np.array(starts), np.array(ends), spans)
    words = text.replace("\n\n", " ").split(" ")
    assert [w for w, m in zip(words, mask, strict=True) if m] == (NAV + " " + BOILER).split()
    assert recurring_share(mask, 0, len(mask)) == pytest.approx(mask.mean())
    assert recurring_share(mask, 3, 3) == 0.0



def test_chunks_made_of_recurring_text_stay_out_of_the_index():
    docs = _corpus()
    table, _ = recurring_units([unit_counts(docs)])
    hashes = set(table["unit_hash"].to_pylist())
    boiler_only = f"{NAV}\n\n{BOILER}"
    mixed = f"{BOILER} The ferry to Quorvath Island leaves at dawn from the old pier."
    cut = BOILER[10:]  # the sentence cut at the chunk's edge: hashed apart, kept
    assert recurring_char_share(boiler_only, hashes) == 1.0
    assert 0.3 < recurring_char_share(mixed, hashes) < 0.7
    assert recurring_char_share(cut, hashes) == 0.0 and recurring_char_share("  ", hashes) == 0
    texts = [boiler_only, mixed, cut]
    assert indexable(texts, hashes).tolist() == [False, True, True]
    assert indexable(texts, hashes, RecurringSettings(max_chunk_share=0.3)).tolist() == [
        False, False, True]
    assert indexable(texts, hashes, RecurringSettings(enabled=False)).all()
    assert indexable(texts, set()).all()


# --- copy classification on token ids --------------------------------------------------
DOC = np.array([10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21], np.int32)


def test_the_k_tokens_before_the_anchor_and_the_anchor_verbatim_make_a_copy():
    t, k = 9, 4  # context 15 16 17 18, anchor 19
    copied = np.array([1, 2, 15, 16, 17, 18, 19, 3], np.int32)
    assert context_copied(DOC, t, copied, k)
    # the anchor token alone (the source naming the same entity in its own words)
    assert not context_copied(DOC, t, np.array([1, 2, 19, 3, 18, 4]), k)
    # the context without the anchor token, or with a token changed, is no copy
    assert not context_copied(DOC, t, np.array([15, 16, 17, 18, 5]), k)
    assert not context_copied(DOC, t, np.array([15, 99, 17, 18, 19]), k)
    # a shorter k only needs the last tokens
    assert context_copied(DOC, t, np.array([99, 17, 18, 19]), 2)
    # near the start the whole prefix is the context
    assert context_copied(DOC, 2, np.array([7, 10, 11, 12]), 8)
    assert not context_copied(DOC, 2, np.array([7, 11, 12]), 8)


def test_byte_matches_that_straddle_token_boundaries_are_not_matches():
    # 256 = bytes 00 01 00 00; a match of token 1 (01 00 00 00) at byte offset 1 of 256 0
    doc = np.array([1, 0], np.int32)
    chunk = np.array([256, 0, 0], np.int32)
    assert not context_copied(doc, 1, chunk, 1)


def test_rows_are_classified_by_context_and_by_recurring_anchor():
    docs = [DOC, np.array([5, 6, 7, 8, 9], np.int32)]
    chunks = [np.array([13, 14, 15, 16, 17], np.int32), np.array([40, 41, 17], np.int32)]
    mask = {1: np.array([0, 0, 0, 1, 1], bool)}
    classes, reasons = classify_rows([0, 0, 1, 1], [7, 7, 2, 4], [0, 1, 1, 0], docs, chunks,
                                     k=3, recurring=mask)
    assert classes.tolist() == [COPY, INFORMATIVE, INFORMATIVE, COPY]
    assert reasons.tolist() == ["context", "", "", "recurring"]
    classes, reasons = classify_rows([0], [7], [0], docs, chunks, k=3, recurring={0: np.ones(
        12, bool)})
    assert reasons.tolist() == ["context+recurring"]


def test_document_frequencies_count_each_word_once_per_document_and_sum_shards():
    from lakehouse.recurring import document_frequencies, normalize_term, term_counts, unit_hash

    docs = ["Marta met Marta.", "marta, the bridge", "The bridge of Quorvath"]
    one, stats = document_frequencies([term_counts(docs)], 3)
    split, _ = document_frequencies([term_counts(docs[:1]), term_counts(docs[1:])], 3)
    assert one.to_pylist() == split.to_pylist() and stats["documents"] == 3
    df = dict(zip(one["term_hash"].to_pylist(), one["docs"].to_pylist(), strict=True))
    assert normalize_term(" Marta,") == "marta"
    assert df[unit_hash("marta")] == 2 and df[unit_hash("bridge")] == 2
    assert df[unit_hash("quorvath")] == 1 and df[unit_hash("the")] == 2


def test_copied_positions_marks_every_position_whose_context_the_chunk_repeats():
    from lakehouse.copies import context_copied, copied_positions

    rng = np.random.default_rng(0)
    doc = rng.integers(0, 50, 60)
    chunk = np.concatenate([rng.integers(50, 99, 10), doc[20:40], rng.integers(50, 99, 5)])
    got = copied_positions(doc, chunk, 8)
    assert got.tolist() == [context_copied(doc, t, chunk, 8) for t in range(len(doc))]
    assert got[28:40].all() and not got[8:28].any() and not got[40:].any()
    assert copied_positions(doc, chunk[:5], 8).tolist() == [
        context_copied(doc, t, chunk[:5], 8) for t in range(len(doc))]
