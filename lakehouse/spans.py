"""Mapping between character spans and token spans (via a tokenizer's offset mapping)."""

from __future__ import annotations

from collections.abc import Sequence


def char_span_to_tokens(offsets: Sequence[tuple[int, int]], start: int,
                        end: int) -> tuple[int, int]:
    """Token span ``[first, last)`` of the tokens that overlap characters ``[start, end)``.

    ``offsets[i]`` is token i's character span. Tokens that carry a leading space (" Quor")
    overlap the span through their non-space characters, so they are included.
    """
    first = last = None
    for i, (a, b) in enumerate(offsets):
        if b > start and a < end and b > a:
            if first is None:
                first = i
            last = i + 1
    if first is None:
        raise ValueError(f"no token overlaps characters [{start}, {end})")
    return first, last
