"""Shared fixtures: a small pipeline config in a temp folder, and the loaded built-ins."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


def write_config(folder: Path, corpora: list[dict], **extra) -> Path:
    """Write a pipeline.yaml with a lake inside ``folder``; returns its path."""
    config = {"lake": "lake", "corpora": corpora, **extra}
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def planted_corpora(seed: int, n_stories: int, n_distractors: int, root_shards: int = 2,
                    pool_shards: int = 1, inject_bad_rows: bool = False) -> list[dict]:
    """The planted demo as two corpora: roots (scored, with ground truth) and their pool."""
    common = {"kind": "planted", "seed": seed, "n_stories": n_stories,
              "n_distractors": n_distractors}
    return [
        {"name": "planted", "uri": "corpora/planted", "format": "parquet", "roles": ["root"],
         "demo": {**common, "part": "roots", "pool_corpus": "planted-pool",
                  "n_shards": root_shards, "inject_bad_rows": inject_bad_rows}},
        {"name": "planted-pool", "uri": "corpora/planted-pool", "format": "parquet",
         "roles": ["pool"], "demo": {**common, "part": "pool", "n_shards": pool_shards}},
    ]


def materialize(config_path: Path, selection: list[str], partition_key: str | None,
                instance, **kwargs):
    """Materialize assets of the Definitions built for ``config_path`` (the project's own
    Definitions and resources, as the code location builds them)."""
    import dagster as dg

    from orchestration.definitions import build_definitions

    defs = build_definitions(str(config_path))
    chosen = dg.AssetSelection.assets(*selection).required_multi_asset_neighbors()
    return dg.materialize(list(defs.assets), selection=chosen, partition_key=partition_key,
                          instance=instance, resources=defs.resources, **kwargs)


SMALL_DEMO = [
    *planted_corpora(seed=3, n_stories=4, n_distractors=2, inject_bad_rows=True),
    {"name": "pystdlib", "uri": "corpora/pystdlib", "format": "jsonl", "roles": ["root", "pool"],
     "demo": {"kind": "pystdlib", "n_docs": 6, "max_chars": 2000, "n_shards": 1,
              "inject_bad_rows": True}},
]


@pytest.fixture
def demo_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small two-corpus demo config, its corpora written, and ELONG_CONFIG pointing at it."""
    from lakehouse.demo import write_demo_corpus
    from orchestration.config import load_config

    path = write_config(tmp_path, SMALL_DEMO)
    monkeypatch.setenv("ELONG_CONFIG", str(path))
    for spec in load_config(path).corpus_specs():
        write_demo_corpus(spec)
    return path


@pytest.fixture(scope="session")
def smollm2():
    """The built-in scorer, loaded once per session (slow tests only)."""
    from models.registry import load_scorer

    return load_scorer("smollm2-135m")


def make_tiny_llama(vocab_size: int = 97, max_positions: int = 256, seed: int = 0,
                    init_std: float = 0.02):
    """A randomly initialised 2-layer Llama for kernel tests (fp32, eval mode).

    At the usual init (std 0.02) its predictions are almost uniform; a larger ``init_std``
    gives entropies that vary from token to token, as a trained model's do.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=max_positions, tie_word_embeddings=False,
                         initializer_range=init_std)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="session")
def tiny_llama():
    return make_tiny_llama()


def save_tiny_scorer(folder: Path, texts: list[str], vocab_size: int = 400) -> Path:
    """A tiny random Llama plus a byte-level BPE tokenizer trained on ``texts``, saved as a
    Hugging Face folder the registry loads like any local model."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<pad>", "<s>", "</s>"]))
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>",
                            eos_token="</s>").save_pretrained(folder)
    make_tiny_llama(vocab_size=tok.get_vocab_size(), max_positions=1024,
                    init_std=0.3).save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The small demo with a tiny random scorer, written and pointed at by ELONG_CONFIG."""
    path = write_tiny_config(tmp_path)
    monkeypatch.setenv("ELONG_CONFIG", str(path))
    return path


def write_tiny_config(tmp_path: Path) -> Path:
    """The small demo with a tiny random scorer under ``tmp_path``: its config, corpora and
    scorer (``tiny_config`` without the environment; module fixtures share one)."""
    from lakehouse.demo import planted, write_demo_corpus
    from orchestration.config import load_config

    docs, _ = planted.generate(seed=3, n_stories=4, n_distractors=2)
    scorer = save_tiny_scorer(tmp_path / "tiny-scorer", [d.text for d in docs])
    path = write_config(tmp_path, SMALL_DEMO, models={"scorer": str(scorer)},
                        scoring={"window": 0, "overlap": 64, "token_budget": 2048},
                        chunking={"size": 48}, retrieval={"k": 3},
                        # a random model's entropies pile up below ln V, so alpha 2 may keep
                        # nothing; the mechanics need some anchors
                        anchors={"alpha": 1.0},
                        # a random model explains no word: the paper's dI rule at epsilon 0
                        # keeps what lowers entropy at all, so packing has units to pack
                        verification={"rule": "delta_i", "epsilon": 0.0},
                        packing={"target_length": 8192},
                        token_weighting={"n": 128},
                        training={"model": "tiny:2x32", "steps": 3, "lr": 1e-3,
                                  "warmup_steps": 0, "zero_stage": 0, "checkpoint_every": 2,
                                  "runs": [{"name": "entropylong-sparse", "mode": "sparse"},
                                           {"name": "baseline-uniform",
                                            "dataset": "baseline"}]},
                        evaluation={"tasks": ["niah_single_1"], "lengths": [512],
                                    "limit": 1})
    for spec in load_config(path).corpus_specs():
        write_demo_corpus(spec)
    return path
