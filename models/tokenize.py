"""Tokenization with the scorer's tokenizer, keeping character offsets for every token."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Tokenized:
    input_ids: np.ndarray  # int32 [n]
    char_start: np.ndarray  # int32 [n], offset of each token in the text
    char_end: np.ndarray  # int32 [n]


def tokenize_texts(tokenizer, texts: Sequence[str], batch_size: int = 256) -> list[Tokenized]:
    """Token ids and offsets, without special tokens (documents are concatenated later)."""
    out: list[Tokenized] = []
    for lo in range(0, len(texts), batch_size):
        enc = tokenizer(list(texts[lo:lo + batch_size]), add_special_tokens=False,
                        return_offsets_mapping=True, return_attention_mask=False)
        for ids, offsets in zip(enc["input_ids"], enc["offset_mapping"], strict=True):
            off = np.asarray(offsets, dtype=np.int32).reshape(-1, 2)
            out.append(Tokenized(np.asarray(ids, dtype=np.int32), off[:, 0].copy(),
                                 off[:, 1].copy()))
    return out
