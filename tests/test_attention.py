"""Attention inside packed units without a dense mask: the same logits and gradients as the
dense [B, 1, T, T] mask, units independent of each other, checkpointing changes nothing."""

from __future__ import annotations

import pytest
import torch

from models.attention import (
    DENSE,
    UNIT_SDPA,
    resolve_attention,
    segments,
    unit_hidden,
    unit_positions,
    use_attention,
)
from models.token_weights import ignore_mask
from models.weighted_loss import token_nll
from tests.conftest import make_tiny_llama

T = 96
# units with padding between and after them, and one full-length sequence
SPANS = [[(0, 40), (44, 90)], [(0, 96)], [(3, 30), (30, 61)]]


def _ids(seed: int = 0) -> torch.Tensor:
    return torch.randint(1, 97, (len(SPANS), T), generator=torch.Generator().manual_seed(seed))


def _in_units(spans=SPANS) -> torch.Tensor:
    inside = torch.zeros(len(spans), T, dtype=torch.bool)
    for b, units in enumerate(spans):
        for a, e in units:
            inside[b, a:e] = True
    return inside


def _forward_backward(model, ids, dense: bool):
    model.zero_grad()
    use_attention(model, DENSE if dense else UNIT_SDPA)
    hidden = unit_hidden(model.model, ids, SPANS, dense=dense)
    logits = model.lm_head(hidden)
    nll = token_nll(hidden, model.lm_head, ids)
    valid = ignore_mask(ids, SPANS)
    (nll * valid).sum().div(valid.sum()).backward()
    return logits.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}


def test_unit_path_gives_the_dense_masks_logits_and_gradients():
    model = make_tiny_llama(seed=3, init_std=0.3).train()  # 4 heads over 2 KV heads (GQA)
    ids = _ids()
    logits_d, grads_d = _forward_backward(model, ids, dense=True)
    logits_u, grads_u = _forward_backward(model, ids, dense=False)
    inside = _in_units()
    torch.testing.assert_close(logits_u[inside], logits_d[inside], rtol=1e-5, atol=1e-5)
    assert grads_u.keys() == grads_d.keys()
    for name, g in grads_u.items():
        torch.testing.assert_close(g, grads_d[name], rtol=1e-5, atol=1e-5, msg=name)


def test_a_units_logits_do_not_change_when_another_unit_changes():
    model = make_tiny_llama(seed=4, init_std=0.3).eval()
    use_attention(model, UNIT_SDPA)
    ids = _ids()
    changed = ids.clone()
    changed[0, :40] = (changed[0, :40] + 7) % 97  # rewrite the first unit of sequence 0
    changed[2, 3:30] = (changed[2, 3:30] + 5) % 97  # and the first unit of sequence 2
    with torch.no_grad():
        a = model.lm_head(unit_hidden(model.model, ids, SPANS))
        b = model.lm_head(unit_hidden(model.model, changed, SPANS))
        alone = model(input_ids=ids[:1, 44:90]).logits  # the unit as a sequence of its own
    torch.testing.assert_close(a[0, 44:90], b[0, 44:90], rtol=0, atol=0)
    torch.testing.assert_close(a[2, 30:61], b[2, 30:61], rtol=0, atol=0)
    torch.testing.assert_close(a[1], b[1], rtol=0, atol=0)  # another sequence of the batch
    torch.testing.assert_close(a[0, 44:90], alone[0], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(a[0, :40], b[0, :40])


def test_position_ids_alone_keep_attention_inside_units():
    """Without cu_seqlens (as a caller passing only restarting position ids would),
    unit_sdpa derives the boundaries from the positions, as FlashAttention-2 does."""
    model = make_tiny_llama(seed=5, init_std=0.3).eval()
    use_attention(model, UNIT_SDPA)
    ids = _ids()[1:2]
    spans = [[(0, 50), (50, 96)]]
    with torch.no_grad():
        by_lengths = unit_hidden(model.model, ids, spans)
        by_positions = model.model(input_ids=ids, position_ids=unit_positions(spans, T),
                                   use_cache=False).last_hidden_state
        plain = model.model(input_ids=ids, use_cache=False).last_hidden_state
    torch.testing.assert_close(by_positions, by_lengths, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(plain[:, :50], by_lengths[:, :50], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(plain[:, 50:], by_lengths[:, 50:])


def test_gradient_checkpointing_changes_no_gradient():
    ids = _ids()
    grads = []
    for checkpointing in (False, True):
        model = make_tiny_llama(seed=6, init_std=0.3).train()
        if checkpointing:
            model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False})
        _, g = _forward_backward(model, ids, dense=False)
        grads.append(g)
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-6, atol=1e-7, msg=name)


def test_segments_cover_every_position_once_with_positions_restarting():
    seg = segments(SPANS, T)
    assert seg.cu_seqlens.tolist() == [0, 40, 44, 90, 96, 192, 195, 222, 253, 288]
    assert seg.max_length == 96
    pos = seg.position_ids.reshape(len(SPANS), T)
    torch.testing.assert_close(pos[_in_units()], unit_positions(SPANS, T)[_in_units()])
    assert pos[0, 40:44].tolist() == [0, 1, 2, 3]  # a padding run is a segment of its own
    with pytest.raises(ValueError, match="overlap"):
        segments([[(0, 50), (40, 96)]], T)


def test_auto_attention_falls_back_to_per_unit_sdpa_without_flash_attention():
    assert resolve_attention("auto", "cpu", torch.float32) == UNIT_SDPA
    assert resolve_attention("dense_mask", "cpu", torch.float32) == DENSE
    with pytest.raises(ValueError, match="flash_attn"):
        resolve_attention("flash_attention_2", "cpu", torch.bfloat16)
    with pytest.raises(ValueError, match="attention must be"):
        resolve_attention("eager", "cpu", torch.float32)
