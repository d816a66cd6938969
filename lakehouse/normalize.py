"""Text normalisation and the reasons a raw row is quarantined."""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum


class Reason(StrEnum):
    """Why a raw row did not become a document. Stored verbatim in the quarantine table."""

    MISSING_TEXT = "missing_text"
    NON_STRING_TEXT = "non_string_text"
    EMPTY_AFTER_CLEANING = "empty_after_cleaning"
    UNDECODABLE_BYTES = "undecodable_bytes"
    TOO_LONG = "too_long"
    MALFORMED_JSON = "malformed_json"
    DUPLICATE_ID = "duplicate_id"


# C0/C1 control characters except tab and newline, lone surrogates (which cannot be written as
# UTF-8), and the byte-order mark. Carriage returns are turned into newlines before this runs.
_STRIP = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufeff]")


def clean_text(text: str) -> str:
    """NFC-normalise, unify line ends, drop NUL and control characters, trim the ends."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _STRIP.sub("", text)
    return unicodedata.normalize("NFC", text).strip()
