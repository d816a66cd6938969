"""Evaluation of a trained checkpoint: RULER tasks through lm-evaluation-harness, and
perplexity on held-out packed sequences by a token's position inside its unit.

Only RULER tasks that generate their data need running here (`niah_single_1`,
`niah_multikey_2`, `niah_multikey_3`, `ruler_vt`, `ruler_cwe`, `ruler_fwe`); the essay and
QA variants download datasets and are refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

OFFLINE_RULER_TASKS = ("niah_single_1", "niah_multikey_2", "niah_multikey_3", "ruler_vt",
                       "ruler_cwe", "ruler_fwe")


def ensure_punkt_tab(root: Path, english_texts: Iterable[str]) -> Path:
    """An NLTK data folder with English Punkt sentence-splitter parameters; returns it.

    RULER's generators split sentences with NLTK's `punkt_tab`, which NLTK would download
    on first use. Instead the parameters are learnt once with NLTK's own PunktTrainer from
    the English prose given (the demo passes the standard library's docstrings) and written
    in the `punkt_tab` layout; RULER's synthetic haystacks need nothing more.
    """
    from nltk.tokenize.punkt import PunktTrainer, save_punkt_params

    from lakehouse.storage import staged

    lang = root / "tokenizers" / "punkt_tab" / "english"
    if (lang / "ortho_context.tab").exists():
        return root
    trainer = PunktTrainer()
    trainer.train(" ".join(english_texts), finalize=True)
    with staged(lang) as tmp:
        save_punkt_params(trainer.get_params(), str(tmp))
    return root


def run_ruler(model_dir: str, tasks: Sequence[str], lengths: Sequence[int], limit: int,
              nltk_data: Path, device: str = "cpu", batch_size: int = 1) -> list[dict]:
    """RULER scores of a Hugging Face checkpoint folder: one row per (task, length)."""
    unknown = sorted(set(tasks) - set(OFFLINE_RULER_TASKS))
    if unknown:
        raise ValueError(f"RULER tasks {unknown} download data; use only {OFFLINE_RULER_TASKS}")
    import nltk

    # nltk reads $NLTK_DATA once, at import; put the folder on its live search path instead
    if str(nltk_data) not in nltk.data.path:
        nltk.data.path.insert(0, str(nltk_data))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import lm_eval

    out = lm_eval.simple_evaluate(
        model="hf", model_args={"pretrained": model_dir, "tokenizer": model_dir},
        tasks=list(tasks), limit=limit, device=device, batch_size=batch_size,
        metadata={"max_seq_lengths": list(lengths), "tokenizer": model_dir,
                  "pretrained": model_dir},
        log_samples=False, bootstrap_iters=0)
    rows = []
    for task, metrics in sorted(out["results"].items()):
        for key, value in metrics.items():
            length, _, filt = key.partition(",")
            # lm-eval lists every default length, with -1 for those not run
            if length.isdigit() and int(length) in lengths and isinstance(value, int | float):
                rows.append({"task": task, "length": int(length), "metric": "score",
                             "filter": filt, "value": float(value)})
    return rows


def perplexity_by_position(model, sequences: Iterable[tuple[np.ndarray, Sequence[tuple]]],
                           buckets: Sequence[int], device: str = "cpu",
                           block_size: int = 1024) -> list[dict]:
    """Mean NLL and perplexity of held-out tokens grouped by their position in their unit.

    ``sequences``: (input_ids, spans) of each held-out sequence, e.g. streamed from the lake
    by models.streamed_data (one sequence in memory at a time). Attention stays inside
    units (the training layout), so position is how much context a token had: long-context
    skill shows as lower loss in the far buckets.
    """
    from models.attention import resolve_attention, unit_hidden, use_attention
    from models.token_weights import ignore_mask
    from models.training import nll_by_position
    from models.weighted_loss import token_nll

    totals: dict[tuple[int, int], list[float]] = {}
    model.eval()
    # the training layout without a T x T mask (memory linear in the sequence length)
    use_attention(model, resolve_attention("auto", device, next(model.parameters()).dtype))
    for row, units in sequences:
        ids = torch.as_tensor(row[None], dtype=torch.long, device=device)
        with torch.no_grad():
            hidden = unit_hidden(model.model, ids, [units])
            nll = token_nll(hidden, model.get_output_embeddings(), ids, block_size).cpu()
        for lo, hi, s, c in nll_by_position(nll, ignore_mask(ids.cpu(), [units]), [units],
                                            buckets):
            acc = totals.setdefault((lo, hi), [0.0, 0])
            acc[0] += s
            acc[1] += c
    return [{"task": "heldout_ppl", "length": int(hi), "metric": f"ppl_pos_{lo}_{hi}",
             "filter": "", "value": float(np.exp(s / c)), "tokens": int(c)}
            for (lo, hi), (s, c) in sorted(totals.items())]
