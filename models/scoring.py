"""The scoring kernel: exact per-token entropy and gold-token NLL from any causal LM.

``score_sequences(model, sequences)`` returns, for each token sequence, two float32 arrays of
the sequence's length: ``entropy[t]`` is the full-vocabulary Shannon entropy (nats) of the
model's distribution for token t given tokens < t, and ``nll[t]`` is -log p(x_t | x_<t).
Position 0 has no prediction (no context) and is NaN in both.

Why not ``model(ids).logits``: that materialises ``[tokens x vocab]`` logits (fp32 on CPU:
4 bytes x 49K vocab = 200 KB per token, 800 MB for a 4K-token document). Here the model body
runs once per batch, and the LM head, log-softmax and reductions run on blocks of positions,
so only ``[block x vocab]`` fp32 logits exist at any time. All reductions are fp32.

Long documents are cut into windows of the model's context that overlap by ``overlap``
tokens; each token is scored in exactly one window, where it has at least ``overlap`` tokens
of context (or its whole prefix). Windows are batched by a token budget, longest first, so
padding is small. The kernel is reused by verification (entropy at anchors with a chunk
prepended) and by token weighting (short-context log-probs), hence ``score_windows``.

Per LM-head block the reductions (max, then both sums of the softmax) are one kernel
compiled by Inductor (``models.fused_head``; ``compile``: auto = CUDA only, on, off) with the
eager computation as the logged fallback. ``pack`` puts a batch's windows in one row without
padding (positions restart per window, attention kept inside each by models.attention's
``unit_sdpa`` or FlashAttention-2 varlen). ``score_positions_after_prefixes`` scores
sequences behind shared prefixes (each prefix's keys and values computed once, rows of
different prefixes batched together).

BOS: with ``ScoringConfig.bos_token_id`` set, every forward input starts with that token
(each window of a long document too), and position 0 of a sequence is scored like any other
(predicted from BOS alone). Unset, nothing is prepended and position 0 is NaN. Models trained
with a BOS at the start of every sequence (Llama 3, Mistral) need it: without it their first
positions are scored out of distribution. Entropy, verification and training must agree:
whoever trains on the packed output puts the same BOS at the start of every training
sequence (of every unit, where units are masked from each other) when the scorer used one.
See ``resolve_bos`` for the per-model setting.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from models.attention import UNIT_SDPA
from models.fused_head import reducer
from models.settings import KERNEL


@dataclass(frozen=True)
class ScoringConfig:
    """The kernel's settings (defaults: models.settings.KernelSettings) and the BOS."""

    window: int = KERNEL.window  # tokens per forward; 0 = the model's max_position_embeddings
    overlap: int = KERNEL.overlap  # minimum context of a token scored in a later window
    token_budget: int = KERNEL.token_budget  # padded tokens per forward batch
    block_size: int = KERNEL.block_size  # positions per LM-head block (fp32 logits)
    compile: str = KERNEL.compile  # fused head through torch.compile: auto | on | off
    pack: bool = KERNEL.pack  # batches packed into one row (no padding) where attention allows
    bos_token_id: int | None = None  # prepended to every forward input; None: no BOS


DEFAULT_SCORING = ScoringConfig()


def resolve_bos(tokenizer, mode: str = "auto") -> int | None:
    """The BOS id to prepend for ``mode``: ``never`` -> None; ``always`` -> the tokenizer's
    BOS (an error if it has none); ``auto`` -> its BOS exactly when the tokenizer itself adds
    one to an encoded text (Llama 3 yes, SmolLM2 and GPT-2 no), i.e. what the model was
    trained with."""
    if mode == "never":
        return None
    bos = getattr(tokenizer, "bos_token_id", None)
    if mode == "always":
        if bos is None:
            raise ValueError("scoring.bos is 'always' but the tokenizer has no BOS token")
        return int(bos)
    if mode != "auto":
        raise ValueError(f"bos mode must be auto, always or never, got {mode!r}")
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return int(bos) if bos is not None and ids and ids[0] == bos else None


@dataclass(frozen=True)
class Window:
    """Tokens ``[start, end)`` of sequence ``seq`` are fed; tokens ``[score_from, end)`` scored."""

    seq: int
    start: int
    end: int
    score_from: int


@dataclass
class TokenScores:
    entropy: np.ndarray  # float32 [n], NaN at position 0
    nll: np.ndarray  # float32 [n], NaN at position 0


def model_window(model) -> int:
    return int(getattr(model.config, "max_position_embeddings", 2048))


def plan_windows(lengths: Sequence[int], window: int, overlap: int, first: int = 1
                 ) -> list[Window]:
    """Cut each sequence into overlapping windows; every position >= ``first`` is scored
    exactly once (``first`` = 0 when a BOS gives position 0 a prediction)."""
    if window < 2:
        raise ValueError(f"window must be at least 2 tokens, got {window}")
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must be in [0, window), got {overlap} for window {window}")
    stride = window - overlap
    out = []
    for seq, n in enumerate(lengths):
        if n <= window:
            out.append(Window(seq, 0, n, first))
            continue
        start, scored_to = 0, first
        while True:
            end = min(start + window, n)
            # Score what earlier windows did not; start <= previous start + stride, so every
            # such token has at least `overlap` tokens of context inside this window.
            out.append(Window(seq, start, end, scored_to))
            if end == n:
                break
            scored_to = end
            start = min(start + stride, n - window)  # the last window ends exactly at n
    return out


def batches_by_budget(windows: Sequence[Window], token_budget: int) -> Iterator[list[Window]]:
    """Longest-first batches whose padded size (rows x longest) stays within the budget."""
    order = sorted(windows, key=lambda w: (-(w.end - w.start), w.seq, w.start))
    batch: list[Window] = []
    for w in order:
        longest = (batch[0].end - batch[0].start) if batch else (w.end - w.start)
        if batch and (len(batch) + 1) * longest > token_budget:
            yield batch
            batch = []
        batch.append(w)
    if batch:
        yield batch


@dataclass(frozen=True)
class HeadTransform:
    """Logit post-processing some architectures apply after the LM head: ``logit_scale``
    (Cohere) and ``final_logit_softcapping`` (Gemma 2); 0 = none. Inside the fused kernel."""

    scale: float = 0.0
    cap: float = 0.0

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        if self.scale:
            logits = logits * self.scale
        if self.cap:
            logits = torch.tanh(logits / self.cap) * self.cap
        return logits


def _head_transform(model) -> HeadTransform:
    return HeadTransform(float(getattr(model.config, "logit_scale", None) or 0.0),
                         float(getattr(model.config, "final_logit_softcapping", None) or 0.0))


@torch.no_grad()
def entropy_nll_from_hidden(hidden: torch.Tensor, targets: torch.Tensor, head: torch.nn.Module,
                            block_size: int, transform=HeadTransform(),
                            compile: str = KERNEL.compile
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropy and NLL (fp32) for rows of final hidden states, ``block_size`` rows at a time.

    Per block: the LM-head matmul, then the reductions of ``models.fused_head`` (compiled
    and fused per ``compile``: auto | on | off, or the plain fallback). ``transform`` is a
    ``HeadTransform`` (fused too) or any callable on the logits (applied before, eagerly).
    """
    n = hidden.shape[0]
    ent = torch.empty(n, dtype=torch.float32, device=hidden.device)
    nll = torch.empty(n, dtype=torch.float32, device=hidden.device)
    reduce = reducer(hidden.device, compile)
    fused = isinstance(transform, HeadTransform)
    scale, cap = (transform.scale, transform.cap) if fused else (0.0, 0.0)
    for lo in range(0, n, block_size):
        hi = min(lo + block_size, n)
        z = head(hidden[lo:hi].to(head.weight.dtype))
        if not fused:
            z = transform(z.float())
        ent[lo:hi], nll[lo:hi] = reduce(z, targets[lo:hi], scale, cap)
        del z
    return ent, nll


@torch.no_grad()
def _forward_hidden(model, ids: torch.Tensor, mask: torch.Tensor | None, cache=None,
                    keep_cache: bool = False, **extra):
    """Final hidden states of the model body (bf16 autocast on CUDA); with ``cache``, the
    tokens follow the cached ones. ``keep_cache``: also return the cache filled by ``ids``.
    ``extra``: more forward arguments (packed batches: position ids and segment bounds)."""
    body = model.base_model
    kwargs = {"input_ids": ids, "attention_mask": mask, **extra}
    if cache is not None or keep_cache:
        kwargs.update(past_key_values=cache, use_cache=True)
    else:
        kwargs["use_cache"] = False
    if ids.device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = body(**kwargs)
    else:
        out = body(**kwargs)
    return (out.last_hidden_state, out.past_key_values) if keep_cache else out.last_hidden_state


PACKABLE = ("unit_sdpa", "flash_attention_2")  # attention that reads segment bounds


def packable(model) -> bool:
    """Whether the model's attention can keep packed passes apart without a dense mask:
    models.attention's ``unit_sdpa`` (causal SDPA per segment) or FlashAttention-2 varlen.
    A model on plain ``sdpa`` is switched to ``unit_sdpa`` (the same SDPA wherever no
    segment bounds are passed); eager and other implementations stay padded."""
    impl = getattr(model.config, "_attn_implementation", None)
    if impl == "sdpa":
        from models.attention import use_attention

        use_attention(model, UNIT_SDPA)
        impl = model.config._attn_implementation
    return impl in PACKABLE


def _forward_batch(model, sequences: Sequence[np.ndarray], batch: Sequence[Window],
                   device, bos: int | None = None, pack: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
    """Run the model body on a batch of windows; (ids, hidden states, where each window's
    first input token sits as (row, column)).

    Padded (default): one right-padded row per window (pad id 0). Packed: the windows one
    after another in a single row, no padding, position ids restarting at 0 per window and
    attention inside each (``cu_seq_lens``; the model must be ``packable``). With ``bos``,
    each window's input starts with it, so window token j sits at column start + j + 1.
    """
    lead = 0 if bos is None else 1
    lengths = [w.end - w.start + lead for w in batch]
    if pack:
        total = sum(lengths)
        ids = torch.zeros((1, total), dtype=torch.long)
        pos = torch.zeros((1, total), dtype=torch.long)
        starts, at = [], 0
        for w, n in zip(batch, lengths, strict=True):
            if lead:
                ids[0, at] = bos
            ids[0, at + lead:at + n] = torch.as_tensor(
                np.asarray(sequences[w.seq][w.start:w.end], dtype=np.int64))
            pos[0, at:at + n] = torch.arange(n)
            starts.append((0, at))
            at += n
        cu = torch.tensor([a for _, a in starts] + [total], dtype=torch.int32, device=device)
        ids = ids.to(device)
        hidden = _forward_hidden(model, ids, None, position_ids=pos.to(device),
                                 cu_seq_lens_q=cu, cu_seq_lens_k=cu,
                                 max_length_q=max(lengths), max_length_k=max(lengths))
        return ids, hidden, starts
    longest = max(lengths)
    ids = torch.zeros((len(batch), longest), dtype=torch.long)
    mask = torch.zeros((len(batch), longest), dtype=torch.long)
    for row, w in enumerate(batch):
        seg = torch.as_tensor(np.asarray(sequences[w.seq][w.start:w.end], dtype=np.int64))
        if lead:
            ids[row, 0] = bos
        ids[row, lead:lead + len(seg)] = seg
        mask[row, :lead + len(seg)] = 1
    ids, mask = ids.to(device), mask.to(device)
    # Without padding, no mask: attention can take its causal fast path.
    padded = any(n != longest for n in lengths)
    return ids, _forward_hidden(model, ids, mask if padded else None), \
        [(row, 0) for row in range(len(batch))]


def batches_packed(windows: Sequence[Window], token_budget: int, lead: int = 0
                   ) -> Iterator[list[Window]]:
    """Longest-first batches whose total tokens (no padding) stay within the budget."""
    order = sorted(windows, key=lambda w: (-(w.end - w.start), w.seq, w.start))
    batch: list[Window] = []
    used = 0
    for w in order:
        n = w.end - w.start + lead
        if batch and used + n > token_budget:
            yield batch
            batch, used = [], 0
        batch.append(w)
        used += n
    if batch:
        yield batch


def _batches(model, windows: Sequence[Window], config: ScoringConfig
             ) -> tuple[Iterator[list[Window]], bool]:
    """The kernel's batches and whether they are packed (``config.pack`` and an attention
    path that allows it)."""
    pack = config.pack and packable(model)
    if pack:
        lead = 0 if config.bos_token_id is None else 1
        return batches_packed(windows, config.token_budget, lead), True
    return batches_by_budget(windows, config.token_budget), False


def score_windows(model, sequences: Sequence[np.ndarray], windows: Sequence[Window],
                  config: ScoringConfig) -> Iterator[tuple[Window, np.ndarray, np.ndarray]]:
    """Score windows in budgeted batches; yields (window, entropy, nll) for scored positions.

    The arrays cover positions ``[score_from, end)`` of the window's sequence.
    """
    device = next(model.parameters()).device
    head = model.get_output_embeddings()
    transform = _head_transform(model)
    bos = config.bos_token_id
    lead = 0 if bos is None else 1
    batches, pack = _batches(model, windows, config)
    for batch in batches:
        ids, hidden, starts = _forward_batch(model, sequences, batch, device, bos, pack)
        # Column p of the input predicts column p+1: gather only the rows that are scored.
        rows, cols, spans = [], [], []
        for (row, at), w in zip(starts, batch, strict=True):
            first = w.score_from - w.start - 1 + lead  # column predicting token score_from
            last = w.end - w.start - 1 + lead
            rows.append(torch.full((last - first,), row, dtype=torch.long))
            cols.append(torch.arange(at + first, at + last, dtype=torch.long))
            spans.append(last - first)
        r = torch.cat(rows).to(device)
        c = torch.cat(cols).to(device)
        h = hidden[r, c]
        targets = ids[r, c + 1]
        ent, nll = entropy_nll_from_hidden(h, targets, head, config.block_size, transform,
                                           config.compile)
        ent, nll = ent.cpu().numpy(), nll.cpu().numpy()
        offset = 0
        for w, span in zip(batch, spans, strict=True):
            yield w, ent[offset:offset + span], nll[offset:offset + span]
            offset += span
        del hidden, h


def score_sequences(model, sequences: Sequence[np.ndarray],
                    config: ScoringConfig = DEFAULT_SCORING) -> list[TokenScores]:
    """Per-token entropy and NLL for every sequence (see the module docstring)."""
    bos = config.bos_token_id is not None
    window = (config.window or model_window(model)) - bos  # room for the BOS
    overlap = min(config.overlap, window // 2)
    lengths = [len(s) for s in sequences]
    out = [TokenScores(np.full(n, np.nan, np.float32), np.full(n, np.nan, np.float32))
           for n in lengths]
    scorable = [i for i, n in enumerate(lengths) if n >= 2 - bos]
    windows = [Window(scorable[w.seq], w.start, w.end, w.score_from)
               for w in plan_windows([lengths[i] for i in scorable], window, overlap,
                                     first=0 if bos else 1)]
    for w, ent, nll in score_windows(model, sequences, windows, config):
        out[w.seq].entropy[w.score_from:w.end] = ent
        out[w.seq].nll[w.score_from:w.end] = nll
    return out


def naive_scores(model, ids: np.ndarray, bos_token_id: int | None = None) -> TokenScores:
    """The obvious way, for tests and benchmarks: full fp32 logits over the whole sequence
    (with ``bos_token_id`` prepended when given, so position 0 is scored too)."""
    seq = np.asarray(ids, dtype=np.int64)
    lead = 0 if bos_token_id is None else 1
    if lead:
        seq = np.concatenate([[bos_token_id], seq])
    x = torch.as_tensor(seq)[None]
    with torch.no_grad():
        logits = model(x).logits.float()[0]
    logp = torch.log_softmax(logits, -1)
    ent = -(logp.exp() * logp).sum(-1)
    nll = -logp[:-1].gather(1, x[0, 1:, None]).squeeze(1)
    n = len(ids)
    e = np.full(n, np.nan, np.float32)
    g = np.full(n, np.nan, np.float32)
    e[1 - lead:] = ent[:-1].numpy()
    g[1 - lead:] = nll.numpy()
    return TokenScores(e, g)


def max_entropy(vocab_size: int) -> float:
    """Upper bound of the entropy over a vocabulary: ln V."""
    return math.log(vocab_size)


def score_positions(model, sequences: Sequence[np.ndarray], positions: Sequence[np.ndarray],
                    config: ScoringConfig = DEFAULT_SCORING) -> list[TokenScores]:
    """Entropy and NLL only at the given token positions of each sequence (each >= 1, or
    >= 0 with a BOS).

    Same batching as ``score_sequences``, but the LM head runs only on the rows that predict
    a requested token, which is what verification needs: H' at the anchors (or every
    position) of the document in a ``[chunk; document]`` sequence. Every sequence must fit
    the model's window, less one token with a BOS.
    """
    bos = config.bos_token_id
    lead = 0 if bos is None else 1
    window = (config.window or model_window(model)) - lead
    device = next(model.parameters()).device
    head = model.get_output_embeddings()
    transform = _head_transform(model)
    out = [TokenScores(np.zeros(len(p), np.float32), np.zeros(len(p), np.float32))
           for p in positions]
    wins = []
    for i, (seq, pos) in enumerate(zip(sequences, positions, strict=True)):
        if len(seq) > window:
            raise ValueError(f"sequence {i} has {len(seq)} tokens, more than the window "
                             f"{window}")
        if len(pos) and (min(pos) < 1 - lead or max(pos) >= len(seq)):
            raise ValueError(f"sequence {i}: positions must lie in [{1 - lead}, {len(seq)})")
        if len(pos):
            wins.append(Window(i, 0, len(seq), 1 - lead))
    batches, pack = _batches(model, wins, config)
    for batch in batches:
        ids, hidden, starts = _forward_batch(model, sequences, batch, device, bos, pack)
        rows = torch.cat([torch.full((len(positions[w.seq]),), r, dtype=torch.long)
                          for (r, _), w in zip(starts, batch, strict=True)]).to(device)
        cols = torch.cat([torch.as_tensor(np.asarray(positions[w.seq], dtype=np.int64)) + at
                          for (_, at), w in zip(starts, batch, strict=True)]).to(device)
        cols = cols + lead  # input columns of the asked tokens
        ent, nll = entropy_nll_from_hidden(hidden[rows, cols - 1], ids[rows, cols], head,
                                           config.block_size, transform, config.compile)
        _scatter(out, batch, positions, ent, nll)
        del hidden
    return out


def _scatter(out: list[TokenScores], batch: Sequence[Window],
             positions: Sequence[np.ndarray], ent: torch.Tensor, nll: torch.Tensor) -> None:
    """Write a batch's scores, gathered window after window, into each sequence's arrays."""
    ent_np, nll_np = ent.cpu().numpy(), nll.cpu().numpy()
    offset = 0
    for w in batch:
        n = len(positions[w.seq])
        out[w.seq].entropy[:] = ent_np[offset:offset + n]
        out[w.seq].nll[:] = nll_np[offset:offset + n]
        offset += n


def _prefix_cache(model, layers: Sequence[tuple[torch.Tensor, torch.Tensor]]):
    """A fresh DynamicCache holding ``layers`` (per layer keys, values [rows, heads, P, dim]);
    the forward appends to copies, so the tensors themselves stay as they are."""
    from transformers import DynamicCache

    return DynamicCache(list(layers), config=model.config)


def score_positions_after_prefix(model, prefix: np.ndarray, sequences: Sequence[np.ndarray],
                                 positions: Sequence[np.ndarray],
                                 config: ScoringConfig = DEFAULT_SCORING
                                 ) -> tuple[list[TokenScores], int]:
    """``score_positions`` on ``[prefix; sequence]`` for each sequence, the prefix run once
    (``score_positions_after_prefixes`` with one prefix). Returns the scores and the tokens
    through the body."""
    return score_positions_after_prefixes(model, [prefix], sequences, [0] * len(sequences),
                                          positions, config)


def score_positions_after_prefixes(model, prefixes: Sequence[np.ndarray],
                                   sequences: Sequence[np.ndarray], prefix_of: Sequence[int],
                                   positions: Sequence[np.ndarray],
                                   config: ScoringConfig = DEFAULT_SCORING
                                   ) -> tuple[list[TokenScores], int]:
    """``score_positions`` on ``[prefixes[prefix_of[i]]; sequences[i]]`` for every i, each
    prefix through the model body once, whatever the number of sequences behind it.

    Why: in verification one chunk is retrieved by many roots (and by many segments of a
    long root); its tokens need not be forwarded once per pass. Positions index the joined
    sequence and must lie in the sequence part (>= the prefix's length).

    How: prefixes are batched longest first within the token budget (one batch = one
    *wave*); each wave's keys and values stay in memory (about one batch's worth) while the
    sequences behind its prefixes run in budgeted batches of their own, sequences of
    different prefixes mixed. Packed (``config.pack`` on ``unit_sdpa``): a batch is one row
    of sequences end to end on a cache holding the wave's prefixes once each, and each
    sequence attends to its own prefix's columns and itself (``_rows_packed``). Padded
    (otherwise): one row per sequence on its prefix's keys and values, copied per row; a 2D
    mask hides the cache columns past a shorter prefix and the padding. Position ids
    continue each row's prefix, and the prefix's last hidden state predicts the sequence's
    first token, so a row feeds exactly its sequence. Values equal the full passes up to
    float summation order. Returns the scores and the tokens through the body (prefixes
    once, plus the sequences).
    """
    bos = config.bos_token_id
    lead = 0 if bos is None else 1
    window = (config.window or model_window(model)) - lead
    device = next(model.parameters()).device
    head = model.get_output_embeddings()
    transform = _head_transform(model)
    prefixes = [np.asarray(p, np.int64) for p in prefixes]
    out = [TokenScores(np.zeros(len(p), np.float32), np.zeros(len(p), np.float32))
           for p in positions]
    behind: dict[int, list[int]] = {}
    for i, (seq, pos, k) in enumerate(zip(sequences, positions, prefix_of, strict=True)):
        p_len = len(prefixes[k])
        if p_len + lead < 1:
            raise ValueError(f"sequence {i}: an empty prefix without a BOS")
        if p_len + len(seq) > window:
            raise ValueError(f"sequence {i}: prefix and sequence have {p_len + len(seq)} "
                             f"tokens, more than the window {window}")
        if len(pos) and (min(pos) < p_len or max(pos) >= p_len + len(seq)):
            raise ValueError(f"sequence {i}: positions must lie in [{p_len}, "
                             f"{p_len + len(seq)})")
        if len(pos):
            behind.setdefault(int(k), []).append(i)
    tokens = 0
    pack = config.pack and packable(model) and model.config._attn_implementation == UNIT_SDPA
    used = [Window(k, 0, len(prefixes[k]), 0) for k in sorted(behind)]
    for wave in batches_by_budget(used, config.token_budget):
        # the wave's prefixes: one padded batch, keys/values and last hidden state kept
        ids, hidden, cache = _forward_prefixes(model, prefixes, wave, device, bos)
        tokens += sum(w.end + lead for w in wave)
        row_of = {w.seq: r for r, w in enumerate(wave)}
        cached = [(layer.keys, layer.values) for layer in cache.layers]
        last = torch.stack([hidden[r, w.end + lead - 1] for r, w in enumerate(wave)])
        del cache, hidden, ids
        rows = [Window(i, 0, len(sequences[i]), 0) for w in wave for i in behind[w.seq]]
        if pack:
            tokens += _rows_packed(model, prefixes, sequences, prefix_of, positions, config,
                                   out, wave, cached, last, rows)
            continue
        for batch in batches_by_budget(rows, config.token_budget):
            tokens += sum(w.end for w in batch)
            k_rows = [row_of[int(prefix_of[w.seq])] for w in batch]
            p_lens = [len(prefixes[int(prefix_of[w.seq])]) + lead for w in batch]
            width, longest = max(p_lens), batch[0].end
            ids = torch.zeros((len(batch), longest), dtype=torch.long)
            mask = torch.zeros((len(batch), width + longest), dtype=torch.long)
            pos_ids = torch.zeros((len(batch), longest), dtype=torch.long)
            for r, (w, p) in enumerate(zip(batch, p_lens, strict=True)):
                ids[r, :w.end] = torch.as_tensor(np.asarray(sequences[w.seq], np.int64))
                mask[r, :p] = 1
                mask[r, width:width + w.end] = 1
                pos_ids[r] = torch.arange(p, p + longest)
            ids = ids.to(device)
            index = torch.as_tensor(k_rows, dtype=torch.long, device=device)
            layers = [(k.index_select(0, index)[:, :, :width], v.index_select(0, index)
                       [:, :, :width]) for k, v in cached]
            h = _forward_hidden(model, ids, mask.to(device), _prefix_cache(model, layers),
                                position_ids=pos_ids.to(device))
            # column 0: the prefix's last state (predicts the sequence's first token)
            h = torch.cat([last.index_select(0, index)[:, None].to(h.dtype), h], dim=1)
            r_idx = torch.cat([torch.full((len(positions[w.seq]),), r, dtype=torch.long)
                               for r, w in enumerate(batch)]).to(device)
            c_idx = torch.cat([torch.as_tensor(np.asarray(positions[w.seq], np.int64)) - p + lead
                               for w, p in zip(batch, p_lens, strict=True)]).to(device)
            ent, nll = entropy_nll_from_hidden(h[r_idx, c_idx], ids[r_idx, c_idx], head,
                                               config.block_size, transform, config.compile)
            _scatter(out, batch, positions, ent, nll)
            del h, layers
    return out, tokens


def _rows_packed(model, prefixes: Sequence[np.ndarray], sequences: Sequence[np.ndarray],
                 prefix_of: Sequence[int], positions: Sequence[np.ndarray],
                 config: ScoringConfig, out: list[TokenScores], wave: Sequence[Window],
                 cached: Sequence[tuple[torch.Tensor, torch.Tensor]], last: torch.Tensor,
                 rows: Sequence[Window]) -> int:
    """The sequences behind one wave of prefixes, packed: each batch is one row of
    sequences end to end (no padding; ``batches_packed``) on a cache that holds the wave's
    prefixes once each, end to end (no copy per row); ``unit_sdpa`` gives each sequence its
    own prefix's columns and itself, causal (``prefix_spans``). Returns the tokens forwarded.
    """
    lead = 0 if config.bos_token_id is None else 1
    device = last.device
    head = model.get_output_embeddings()
    transform = _head_transform(model)
    row_of = {w.seq: r for r, w in enumerate(wave)}
    lengths = [w.end + lead for w in wave]  # real cache columns of each wave row
    offsets = np.concatenate([[0], np.cumsum(lengths)]).tolist()
    flat = [(torch.cat([k[r:r + 1, :, :n] for r, n in enumerate(lengths)], dim=2),
             torch.cat([v[r:r + 1, :, :n] for r, n in enumerate(lengths)], dim=2))
            for k, v in cached]
    tokens = 0
    for batch in batches_packed(rows, config.token_budget):
        total = sum(w.end for w in batch)
        tokens += total
        ids = torch.zeros((1, total), dtype=torch.long)
        pos_ids = torch.zeros((1, total), dtype=torch.long)
        starts, spans, hid_idx, tgt_idx = [], [], [], []
        at = 0
        for w in batch:
            r = row_of[int(prefix_of[w.seq])]
            p = lengths[r]  # the joined sequence's prefix part, BOS included
            ids[0, at:at + w.end] = torch.as_tensor(np.asarray(sequences[w.seq], np.int64))
            pos_ids[0, at:at + w.end] = torch.arange(p, p + w.end)
            starts.append(at)
            spans.append((offsets[r], offsets[r] + p))
            j = np.asarray(positions[w.seq], np.int64) - (p - lead)  # index in the sequence
            # token j is predicted by the state before it: the prefix's last for j = 0
            hid_idx.append(np.where(j == 0, total + r, at + j - 1))
            tgt_idx.append(at + j)
            at += w.end
        cu = torch.tensor(starts + [total], dtype=torch.int32, device=device)
        ids = ids.to(device)
        h = _forward_hidden(model, ids, None, _prefix_cache(model, flat),
                            position_ids=pos_ids.to(device), cu_seq_lens_q=cu,
                            prefix_spans=spans)[0]
        h = torch.cat([h, last.to(h.dtype)], dim=0)
        hi = torch.as_tensor(np.concatenate(hid_idx), device=device)
        ti = torch.as_tensor(np.concatenate(tgt_idx), device=device)
        ent, nll = entropy_nll_from_hidden(h[hi], ids[0, ti], head,
                                           config.block_size, transform, config.compile)
        _scatter(out, batch, positions, ent, nll)
        del h
    return tokens


def _forward_prefixes(model, prefixes: Sequence[np.ndarray], wave: Sequence[Window], device,
                      bos: int | None):
    """One right-padded batch of prefixes (BOS first when set): ids, final hidden states and
    the filled cache (real keys of a row first, its padding after them)."""
    lead = 0 if bos is None else 1
    width = max(w.end for w in wave) + lead
    ids = torch.zeros((len(wave), width), dtype=torch.long)
    mask = torch.zeros((len(wave), width), dtype=torch.long)
    for r, w in enumerate(wave):
        if lead:
            ids[r, 0] = bos
        ids[r, lead:lead + w.end] = torch.as_tensor(prefixes[w.seq])
        mask[r, :lead + w.end] = 1
    padded = bool((mask == 0).any())
    hidden, cache = _forward_hidden(model, ids.to(device), mask.to(device) if padded else None,
                                    keep_cache=True)
    return ids, hidden, cache
