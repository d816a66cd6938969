"""The model registry resolves built-ins, local folders and hub ids, and fails clearly."""

from __future__ import annotations

import pytest
import torch

from models.registry import (
    MINILM,
    ModelNotFoundError,
    load_scorer,
    resolve_embedder,
    resolve_scorer,
)


def test_missing_path_error_lists_what_was_tried(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelNotFoundError) as err:
        resolve_scorer(str(missing))
    text = str(err.value)
    assert "no-such-model" in text and "does not exist" in text
    assert "smollm2-135m" in text and "hub id" in text


def test_folder_without_config_is_not_taken_for_a_model(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\x00")
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_scorer(str(tmp_path))


def test_hub_ids_pass_through_for_real_deployments():
    assert resolve_scorer("meta-llama/Meta-Llama-3-8B").location == "meta-llama/Meta-Llama-3-8B"


def test_local_hugging_face_folder_loads(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    tok = Tokenizer(models.WordLevel({f"w{i}": i for i in range(63)} | {"[UNK]": 63},
                                     unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(tmp_path)
    model, tokenizer = load_scorer(str(tmp_path))
    assert model.config.vocab_size == 64 and not model.training
    assert tokenizer("w1 w2")["input_ids"] == [1, 2]


def test_broken_model_folder_fails_with_the_location(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelNotFoundError, match=str(tmp_path)):
        load_scorer(str(tmp_path))


def test_built_in_embedder_resolves_to_the_shipped_folder():
    resolved = resolve_embedder(MINILM)
    assert resolved.location.endswith("model")
    with pytest.raises(ModelNotFoundError, match="minilm-l6-v2"):
        resolve_embedder("/no/such/embedder")


@pytest.mark.slow
def test_built_in_smollm2_loads_and_reads_context(smollm2):
    """Entropy at a made-up name's inner token falls once a text introducing it is read."""
    model, tokenizer = smollm2
    assert model.config.vocab_size == 49152 and model.num_parameters() == 134_515_008
    intro = ("The lighthouse keeper on the northern island was a woman whose name was "
             "Quorvath Elindsey. She kept the lamp burning for forty years. ")
    probe = "Years later the village still spoke of the keeper, whose name was Quorvath Elindsey"

    def entropy_at_last_token(text: str) -> float:
        ids = tokenizer(text, return_tensors="pt").input_ids
        target = tokenizer(" Elindsey", add_special_tokens=False).input_ids
        pos = ids.shape[1] - len(target)  # logits at pos-1 predict the surname's first token
        with torch.no_grad():
            logits = model(ids).logits[0, pos - 1].float()
        p = logits.log_softmax(-1)
        return float(-(p.exp() * p).sum())

    alone, with_intro = entropy_at_last_token(probe), entropy_at_last_token(intro + probe)
    assert alone > 2.0 and with_intro < 0.5 * alone


@pytest.mark.slow
def test_built_in_embedder_embeds():
    from models.registry import load_embedder

    model = load_embedder(MINILM)
    vecs = model.encode(["a ship sank near the harbour", "the wreck lies off the port"],
                        normalize_embeddings=True)
    assert vecs.shape == (2, 384)
    assert float(vecs[0] @ vecs[1]) > 0.4
