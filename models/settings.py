"""Settings of the model stages that the pipeline config composes, kept free of torch so
that reading a config does not load it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class KernelSettings(BaseModel):
    """The entropy kernel's windows and batches (models.scoring.ScoringConfig takes its
    defaults from here; the config's ``scoring`` block adds where it runs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: int = Field(0, ge=0)  # tokens per forward; 0: the model's max_position_embeddings
    overlap: int = Field(1024, ge=0)  # minimum context of a token scored in a later window
    token_budget: int = Field(8192, gt=0)  # padded tokens per forward batch
    block_size: int = Field(512, gt=0)  # positions per LM-head block (block x vocab logits)
    compile: Literal["auto", "on", "off"] = "auto"  # entropy head fused by torch.compile;
    # auto: on CUDA only. On CPU the fused reductions cost 1/20 of the plain ones, but those
    # are ~5% of a SmolLM2 pass and a compile takes 10-20 s per process: CPU runs opt in (on)
    pack: bool = True  # batches packed into one row, no padding, attention kept inside each
    # pass (models.attention unit_sdpa / FlashAttention-2 varlen; shared-chunk rows too, on
    # unit_sdpa); False: rows padded. bench/verification, 2 CPU cores: packed 1.08x faster
    # than padded without the prefix cache, 1.12x with it; scores equal to 3e-5

    @field_validator("compile", mode="before")
    @classmethod
    def _yaml_on_off(cls, v):
        """YAML 1.1 reads a bare on/off as a boolean; take it as meant."""
        return {True: "on", False: "off"}.get(v, v) if isinstance(v, bool) else v


KERNEL = KernelSettings()


class VerifySettings(BaseModel):
    """Where each (document, chunk) verification pass reads H'."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    positions: Literal["all", "anchors"] = "all"  # all: every scored position of the root
    # (what the span rule needs); anchors: only the anchors (the paper's reading)
    prefix_cache: bool = True  # every chunk is forwarded once and each root runs on its
    # keys/values (same H' to 3e-5): 1.31x fewer tokens than one pass per (root, chunk) on
    # bench/verification's planted pool, 1.20x less time on 2 CPU cores (both packed)
    reuse: bool = True  # forward only the (root, chunk) passes whose key the shard's pass
    # store lacks (lakehouse.pass_store); False: forward every pass (a full refresh)


KAPPA_FROZEN = 0.4  # sparse: kept fraction with a frozen scorer (SPEC B.2)
KAPPA_UNFROZEN = 0.2  # sparse: kept fraction when the model scores itself
CHECKPOINT_ABOVE = 16384  # gradient checkpointing by default for sequences longer than this


@dataclass(frozen=True)
class TrainSettings:
    """One training run; the defaults are the paper's recipe (Helm et al., SPEC B.3) and the
    only defaults: the pipeline config takes its own from here."""

    mode: str = "uniform"  # uniform | dense | sparse
    frozen: bool = True  # short-context scores precomputed (False: the model scores itself)
    variant: str = "abs"
    shift_k: float = 2.0
    lam: float = 0.75
    kappa: float | None = None  # sparse kept fraction; None: 0.4 frozen, 0.2 unfrozen
    n: int = 8192  # short context n; the pipeline resolves token_weighting.n with
    # models.short_context.short_context_n (0: the frozen scorer's window), as token_weights
    overlap: int | None = None  # None: n / 4
    steps: int = 240
    micro_batch: int = 1
    grad_accum: int = 1
    lr: float = 2e-5
    warmup_steps: int = 20
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    zero_stage: int = 3
    rope_theta: float | None = None  # context extension: the new RoPE base
    block_size: int = 1024  # LM-head rows per block
    seed: int = 0  # data order and the sparse tie-breaking draw
    checkpoint_every: int = 50  # 0: only at the end
    bf16: bool = False  # bf16 weights and activations (GPU); the loss stays fp32
    attention: str = "auto"  # auto (FlashAttention-2 varlen on CUDA when installed, else
    # per-unit SDPA) | flash_attention_2 | unit_sdpa | dense_mask (T x T mask; reference)
    gradient_checkpointing: bool | None = None  # None: on above CHECKPOINT_ABOVE tokens
    processes: int | None = None  # training processes (one per GPU, data parallel, ZeRO
    # across them; global batch = micro_batch x grad_accum x processes); None: every GPU the
    # pod has (torch.cuda.device_count()), 1 on a CPU
    shuffle_window: int = 1  # row groups whose sequences are shuffled together per epoch
    # (models.streamed_data): the row groups a reader holds at once

    @property
    def sparse_kappa(self) -> float:
        """kappa of this run: the configured one, else the paper's default for the variant."""
        if self.kappa is not None:
            return self.kappa
        return KAPPA_FROZEN if self.frozen else KAPPA_UNFROZEN

    def checkpointing(self, length: int) -> bool:
        """Whether a micro-batch of sequences of ``length`` tokens recomputes activations."""
        if self.gradient_checkpointing is not None:
            return self.gradient_checkpointing
        return length > CHECKPOINT_ABOVE


def pod_gpus(processes: int | None, configured: int = 1) -> int:
    """GPUs a training pod asks for (``nvidia.com/gpu``): one per configured process, else
    the pod configuration's own count, which the trainer then fills (processes None: one
    per visible GPU). Torch-free, so the Kubernetes op tags can call it."""
    if processes is not None and processes < 1:
        raise ValueError(f"processes must be at least 1, not {processes}")
    return int(processes) if processes else int(configured)
