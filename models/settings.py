"""Settings of the model stages that the pipeline config composes, kept free of torch so
that reading a config does not load it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class KernelSettings(BaseModel):
    """The entropy kernel's windows and batches (models.scoring.ScoringConfig takes its
    defaults from here; the config's ``scoring`` block adds where it runs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: int = Field(0, ge=0)  # tokens per forward; 0: the model's max_position_embeddings
    overlap: int = Field(1024, ge=0)  # minimum context of a token scored in a later window
    token_budget: int = Field(8192, gt=0)  # padded tokens per forward batch
    block_size: int = Field(512, gt=0)  # positions per LM-head block (block x vocab logits)


KERNEL = KernelSettings()


class VerifySettings(BaseModel):
    """Where each (document, chunk) verification pass reads H'."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    positions: Literal["all", "anchors"] = "all"  # all: every scored position of the root
    # (what the span rule needs); anchors: only the anchors (the paper's reading)


@dataclass(frozen=True)
class TrainSettings:
    """One training run; the defaults are the paper's recipe (Helm et al., SPEC B.3) and the
    only defaults: the pipeline config takes its own from here."""

    mode: str = "uniform"  # uniform | dense | sparse
    frozen: bool = True  # short-context scores precomputed (False: the model scores itself)
    variant: str = "abs"
    shift_k: float = 2.0
    lam: float = 0.75
    kappa: float = 0.4
    n: int = 8192  # short context (unfrozen scoring); frozen scores carry their own n
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
    seed: int = 0
    checkpoint_every: int = 50  # 0: only at the end
    bf16: bool = False  # bf16 weights and activations (GPU); the loss stays fp32
