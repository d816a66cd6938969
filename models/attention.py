"""Attention kept inside packed units, with memory linear in the sequence length.

A packed sequence holds several units (ProLong `indices`); attention must never cross a unit
boundary and positions restart at each unit. A dense ``[B, 1, T, T]`` boolean mask does that
but costs T^2 (16 GiB at 131,072 tokens) and rules out the fused attention kernels. Here the
boundaries travel as sequence lengths instead, as ProLong's trainer passes them: the batch is
flattened to one row of B*T tokens, ``cu_seqlens`` marks where each segment starts (every
unit, and every run of padding, is a segment), and position ids restart at 0 per segment.

Two kernels read those boundaries:

* ``flash_attention_2`` (CUDA, bf16/fp16, the ``flash_attn`` package): transformers' varlen
  path, ``flash_attn_varlen_func`` over ``cu_seq_lens_q/k``.
* ``unit_sdpa`` (everywhere else): registered here as a transformers attention function.
  Each segment runs through ``scaled_dot_product_attention`` with ``is_causal`` and no mask,
  which takes torch's flash kernel on CPU and the flash / memory-efficient kernels on CUDA,
  forward and backward. Measured on this project's 2-core CPU, FlexAttention with a block
  mask was not an option: torch 2.13 has no FlexAttention backward on CPU.

Without boundaries (the unfrozen short-context pass, windows batched with a 2D padding mask)
``unit_sdpa`` is plain SDPA, so one model serves both. Padding runs are segments of their
own: their outputs differ from the dense mask's (which let padding attend to itself only),
but no counted token attends to them and their labels carry weight 0.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

UNIT_SDPA = "unit_sdpa"
FLASH = "flash_attention_2"
DENSE = "dense_mask"
Attention = Literal["auto", "flash_attention_2", "unit_sdpa", "dense_mask"]
ATTENTIONS: tuple[str, ...] = ("auto", FLASH, UNIT_SDPA, DENSE)


@dataclass(frozen=True)
class Segments:
    """One flattened row: position ids [1, B*T] and segment starts [S + 1] (int32)."""

    position_ids: torch.Tensor
    cu_seqlens: torch.Tensor
    max_length: int

    def kwargs(self, device: torch.device | str) -> dict:
        """The keyword arguments of a transformers forward that carry the boundaries."""
        cu = self.cu_seqlens.to(device)
        return {"position_ids": self.position_ids.to(device), "cu_seq_lens_q": cu,
                "cu_seq_lens_k": cu, "max_length_q": self.max_length,
                "max_length_k": self.max_length}


def segments(spans: Sequence[Sequence[tuple[int, int]]], length: int) -> Segments:
    """Segments of B sequences of ``length`` tokens flattened into one row: each unit span,
    and each run of positions outside every span (padding), in order."""
    starts: list[int] = []
    pos = torch.zeros(len(spans) * length, dtype=torch.long)
    for b, units in enumerate(spans):
        cursor = 0
        for a, e in sorted((int(a), int(e)) for a, e in units):
            if not 0 <= cursor <= a < e <= length:
                raise ValueError(f"sequence {b}: unit spans {list(units)} overlap, are empty "
                                 f"or leave the sequence of {length} tokens")
            bounds = [(cursor, a)] if a > cursor else []
            for s, t in bounds + [(a, e)]:
                starts.append(b * length + s)
                pos[b * length + s:b * length + t] = torch.arange(t - s)
            cursor = e
        if cursor < length:
            starts.append(b * length + cursor)
            pos[b * length + cursor:(b + 1) * length] = torch.arange(length - cursor)
    cu = torch.tensor(starts + [len(spans) * length], dtype=torch.int32)
    return Segments(pos[None], cu, int(cu.diff().max()) if len(starts) else 0)


def cu_seqlens_from_positions(position_ids: torch.Tensor) -> torch.Tensor:
    """Segment starts of a flattened batch whose positions restart at 0 per segment."""
    pos = position_ids.reshape(-1)
    starts = torch.nonzero(pos == 0).reshape(-1)
    if len(starts) == 0 or int(starts[0]) != 0:
        starts = torch.cat([torch.zeros(1, dtype=starts.dtype, device=pos.device), starts])
    return torch.cat([starts, torch.tensor([pos.numel()], device=pos.device)]).to(torch.int32)


def _repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    if n_rep == 1:
        return x
    b, h, t, d = x.shape
    return x[:, :, None].expand(b, h, n_rep, t, d).reshape(b, h * n_rep, t, d)


def unit_sdpa_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor,
                        value: torch.Tensor, attention_mask: torch.Tensor | None,
                        dropout: float = 0.0, scaling: float | None = None,
                        cu_seq_lens_q: torch.Tensor | None = None,
                        position_ids: torch.Tensor | None = None,
                        prefix_spans: Sequence[tuple[int, int]] | None = None, **kwargs
                        ) -> tuple[torch.Tensor, None]:
    """transformers attention function (query [1, H, L, D], key/value [1, Hkv, L, D] ->
    [1, L, H, D]): causal SDPA inside each segment of ``cu_seq_lens_q``, or of the position
    ids when they restart; plain SDPA when there are no boundaries.

    ``prefix_spans`` (one per segment): the keys and values start with cached columns (a
    KV cache of several prefixes laid end to end), and segment i also sees the columns
    ``prefix_spans[i]`` before its own, all of them (causal aligned to the lower right):
    verification's rows on shared chunks, packed without padding."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if cu_seq_lens_q is None and attention_mask is None and position_ids is not None \
            and query.shape[0] == 1 and bool((position_ids.reshape(-1)[1:] == 0).any()):
        cu_seq_lens_q = cu_seqlens_from_positions(position_ids)
    if cu_seq_lens_q is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask,
                                      dropout=dropout, scaling=scaling, **kwargs)
    if query.shape[0] != 1:
        raise ValueError("unit_sdpa with segment boundaries expects one flattened row")
    n_rep = query.shape[1] // key.shape[1]
    bounds = cu_seq_lens_q.tolist()
    if prefix_spans is not None:
        return _after_prefixes(query, key, value, bounds, prefix_spans, n_rep, dropout,
                               scaling), None
    outs = []
    for a, e in zip(bounds[:-1], bounds[1:], strict=True):
        if e > a:
            outs.append(F.scaled_dot_product_attention(
                query[:, :, a:e], _repeat_kv(key[:, :, a:e], n_rep),
                _repeat_kv(value[:, :, a:e], n_rep), dropout_p=dropout, is_causal=True,
                scale=scaling))
    return torch.cat(outs, dim=2).transpose(1, 2).contiguous(), None


def _after_prefixes(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                    bounds: list[int], prefix_spans: Sequence[tuple[int, int]], n_rep: int,
                    dropout: float, scaling: float | None) -> torch.Tensor:
    """Each segment on its prefix's cached columns and its own, causal to the lower right."""
    past = key.shape[2] - query.shape[2]
    if len(prefix_spans) != len(bounds) - 1:
        raise ValueError(f"{len(prefix_spans)} prefix spans for {len(bounds) - 1} segments")
    outs = []
    for (a, e), (ps, pe) in zip(zip(bounds[:-1], bounds[1:], strict=True), prefix_spans,
                                strict=True):
        if e <= a:
            continue
        k = torch.cat([key[:, :, ps:pe], key[:, :, past + a:past + e]], dim=2)
        v = torch.cat([value[:, :, ps:pe], value[:, :, past + a:past + e]], dim=2)
        n, p = e - a, pe - ps
        mask = torch.ones(n, p + n, dtype=torch.bool, device=query.device).tril(diagonal=p)
        outs.append(F.scaled_dot_product_attention(
            query[:, :, a:e], _repeat_kv(k, n_rep), _repeat_kv(v, n_rep), attn_mask=mask,
            dropout_p=dropout, scale=scaling))
    return torch.cat(outs, dim=2).transpose(1, 2).contiguous()


def _unit_sdpa_mask(*args, attention_mask: torch.Tensor | None = None, **kwargs):
    """No mask at all when none was given (the boundaries come with the attention call);
    SDPA's mask for a 2D padding mask (batched short-context windows)."""
    if attention_mask is None:
        return None
    from transformers.masking_utils import sdpa_mask

    return sdpa_mask(*args, attention_mask=attention_mask, **kwargs)


def register() -> None:
    """Make ``unit_sdpa`` a transformers attention implementation (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(UNIT_SDPA, unit_sdpa_attention)
    AttentionMaskInterface.register(UNIT_SDPA, _unit_sdpa_mask)


def flash_available() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def resolve_attention(requested: str, device: torch.device | str, dtype: torch.dtype) -> str:
    """The implementation a run uses. ``auto``: FlashAttention-2 varlen on CUDA in bf16/fp16
    when ``flash_attn`` is importable, else ``unit_sdpa`` (logged, since on a GPU it is the
    slower choice). An explicit ``flash_attention_2`` that cannot run is an error."""
    if requested not in ATTENTIONS:
        raise ValueError(f"attention must be one of {ATTENTIONS}, got {requested!r}")
    on_cuda = torch.device(device).type == "cuda"
    half = dtype in (torch.bfloat16, torch.float16)
    if requested == FLASH and not (on_cuda and half and flash_available()):
        raise ValueError("attention flash_attention_2 needs CUDA, bf16 or fp16 weights and the "
                         f"flash_attn package (device {device}, dtype {dtype}, flash_attn "
                         f"{'installed' if flash_available() else 'not installed'})")
    if requested != "auto":
        return requested
    if on_cuda and half and flash_available():
        return FLASH
    if on_cuda:
        log.warning("attention auto: FlashAttention-2 unavailable (%s); using per-unit SDPA",
                    "flash_attn not installed" if half else f"weights in {dtype}")
    return UNIT_SDPA


def use_attention(model, implementation: str) -> None:
    """Set the model's attention implementation (``dense_mask`` runs on SDPA)."""
    name = "sdpa" if implementation == DENSE else implementation
    if name == UNIT_SDPA:
        register()
    if model.config._attn_implementation != name:
        model.set_attn_implementation(name)


def dense_unit_mask(spans: Sequence[Sequence[tuple[int, int]]], length: int) -> torch.Tensor:
    """The reference: [B, 1, T, T] bool, causal inside each unit, nothing across units,
    padding attending to itself only. T^2 memory: for tests and the benchmark baseline."""
    mask = torch.zeros(len(spans), 1, length, length, dtype=torch.bool)
    diag = torch.arange(length)
    mask[:, 0, diag, diag] = True  # padding rows stay finite
    for i, units in enumerate(spans):
        for a, e in units:
            mask[i, 0, a:e, a:e] = torch.tril(torch.ones(e - a, e - a, dtype=torch.bool))
    return mask


def unit_positions(spans: Sequence[Sequence[tuple[int, int]]], length: int) -> torch.Tensor:
    """Position ids [B, T] restarting at 0 in each unit (0 on padding)."""
    pos = torch.zeros(len(spans), length, dtype=torch.long)
    for i, units in enumerate(spans):
        for a, e in units:
            pos[i, a:e] = torch.arange(e - a)
    return pos


def unit_hidden(body, input_ids: torch.Tensor, spans: Sequence[Sequence[tuple[int, int]]],
                dense: bool = False) -> torch.Tensor:
    """Last hidden states [B, T, H] of ``body`` (the model without its head) with attention
    inside units: boundaries as sequence lengths over one flattened row, or with ``dense``
    the [B, 1, T, T] mask. The model's attention implementation must be set
    (``use_attention``); under ``unit_sdpa`` or ``flash_attention_2`` no T x T tensor exists."""
    b, t = input_ids.shape
    device = input_ids.device
    if dense:
        return body(input_ids=input_ids, attention_mask=dense_unit_mask(spans, t).to(device),
                    position_ids=unit_positions(spans, t).to(device),
                    use_cache=False).last_hidden_state
    seg = segments(spans, t)
    hidden = body(input_ids=input_ids.reshape(1, b * t), use_cache=False,
                  **seg.kwargs(device)).last_hidden_state
    return hidden.reshape(b, t, -1)
