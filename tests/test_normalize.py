import unicodedata

from lakehouse.normalize import clean_text


def test_nfc_composes_decomposed_characters():
    decomposed = "Cafe\u0301 au lait"
    assert clean_text(decomposed) == "Caf\u00e9 au lait"
    assert unicodedata.is_normalized("NFC", clean_text(decomposed))


def test_control_characters_and_nul_are_removed_but_layout_kept():
    raw = "a\x00b\x07c\td\r\ne\rf\x1b\x7f\u0085g\ufeff"
    assert clean_text(raw) == "abc\td\ne\nfg"


def test_lone_surrogates_are_removed_so_text_encodes_as_utf8():
    cleaned = clean_text("ok \ud800 then")
    cleaned.encode("utf-8")
    assert cleaned == "ok  then"


def test_whitespace_only_text_cleans_to_empty():
    assert clean_text(" \x00\n\t ") == ""
