"""Helpers assets share: the device, plots as metadata, the configured scorer."""

import dagster as dg

from lakehouse.plots import markdown_image


def torch_device(setting: str) -> str:
    if setting != "auto":
        return setting
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def image(png: bytes, alt: str) -> dg.MetadataValue:
    return dg.MetadataValue.md(markdown_image(png, alt))


def configured_scoring(settings):
    """The kernel settings of the configured scorer, read from its config and tokenizer
    alone (no weights: a verification whose passes are all stored never loads them)."""
    from transformers import AutoConfig

    from models.registry import load_tokenizer, resolve_scorer
    from models.scoring import ScoringConfig, resolve_bos

    sc = settings.scoring
    tokenizer, _ = load_tokenizer(settings.models.scorer)
    window = sc.window or int(getattr(AutoConfig.from_pretrained(
        resolve_scorer(settings.models.scorer).location), "max_position_embeddings", 2048))
    return ScoringConfig(window=window, overlap=sc.overlap, token_budget=sc.token_budget,
                         block_size=sc.block_size, bos_token_id=resolve_bos(tokenizer, sc.bos),
                         compile=sc.compile, pack=sc.pack)


def load_configured_scorer(settings):
    """The configured scorer on its device, and the kernel settings to run it with."""
    from models.registry import load_scorer

    sc = settings.scoring
    model, _ = load_scorer(settings.models.scorer, dtype=sc.dtype,
                           device=torch_device(sc.device))
    return model, configured_scoring(settings)

