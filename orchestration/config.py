"""The pipeline's configuration file (``pipeline.yaml``), parsed into typed models.

One YAML file says where the lake is, which corpora feed it and which models score and embed.
``$ELONG_CONFIG`` points at another file; relative paths in a file are resolved against the
folder that holds it, so the same file works from any working directory.
"""

from __future__ import annotations

import os
import re
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from lakehouse.anchors import AnchorSettings
from lakehouse.corpora import CorpusSpec
from lakehouse.dependencies import DecisionSettings
from lakehouse.packing import PackingSettings
from lakehouse.project_files import is_installed_file, project_file
from lakehouse.recurring import RecurringSettings
from lakehouse.retrieval import RetrievalSettings
from lakehouse.storage import Lake, is_url
from lakehouse.vector_index import IndexSettings
from models.distance_check import DistanceCheckSettings
from models.settings import KernelSettings, TrainSettings, VerifySettings

_TR = TrainSettings()  # the trainer's defaults are the config's: one definition per setting

DEFAULT_CONFIG = project_file("pipeline.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CorpusConfig(_Strict):
    name: str
    uri: str
    format: Literal["parquet", "jsonl"] = "parquet"
    text_column: str = "text"
    id_column: str | None = "id"
    glob: str | None = None
    roles: list[Literal["root", "pool"]] = ["root", "pool"]  # root: scored for anchors
    demo: dict = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _no_slash(cls, v: str) -> str:
        if not v or "/" in v:
            raise ValueError("corpus name must be non-empty and contain no '/'")
        return v


class ModelsConfig(_Strict):
    scorer: str = "smollm2-135m"
    embedder: str = "minilm-l6-v2"


class IngestConfig(_Strict):
    max_chars: int = Field(1_000_000, gt=0)


class ScoringSettings(KernelSettings):
    """The entropy kernel (models.settings.KernelSettings) and where it runs."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["float32", "bfloat16"] = "float32"  # weights; reductions are always fp32
    bos: Literal["auto", "always", "never"] = "auto"  # the scorer's BOS before every scored
    # sequence, every verification pass and every packed unit (models.scoring.resolve_bos;
    # auto: when its tokenizer adds one itself, as Llama 3's does and SmolLM2's does not)


class ChunkSettings(_Strict):
    size: int = Field(256, gt=0)  # tokens per chunk at most
    min_size: int | None = Field(None, ge=0)  # default size // 2


class VerificationSettings(DecisionSettings, VerifySettings):
    """The decision (lakehouse.dependencies.DecisionSettings) and where each (document,
    chunk) pass reads H' (models.settings.VerifySettings)."""

    @field_validator("mode", mode="before")
    @classmethod
    def _yaml_on_off(cls, v):
        """YAML 1.1 reads a bare on/off as a boolean; take it as meant."""
        if isinstance(v, bool):
            return "on" if v else "off"
        return v


class TokenWeightingSettings(_Strict):
    """Token-weighted training (Helm et al.): the short-context scorer and the weights' shape;
    which loss (uniform / dense / sparse, frozen / unfrozen) is each run's own setting."""

    scorer: str | None = None  # frozen short-context model; None: models.scorer
    n: int = Field(0, ge=0)  # short context; 0: the frozen scorer's window, for token_weights
    # and training alike (models.short_context.short_context_n)
    overlap: int | None = _TR.overlap  # context of tokens in later windows; None: n / 4
    variant: Literal["abs", "ppmi", "npmi", "sppmi", "snpmi"] = _TR.variant
    shift_k: float = Field(_TR.shift_k, ge=2.0)  # the k of the shifted variants (minus ln k)
    lam: float = Field(_TR.lam, ge=0, le=1)  # dense: w = lam + (1 - lam) * norm(|s|)
    kappa: float | None = Field(_TR.kappa, gt=0, le=1)  # sparse: kept fraction; None: the
    # paper's default for the run's variant (0.4 frozen, 0.2 unfrozen)
    datasets: list[str] = ["entropylong", "baseline"]  # packed datasets to score


class TrainingRun(_Strict):
    """One training run: which packed data, which loss. Runs are the `trained_model` and
    `evaluation` partitions, so they can be compared side by side."""

    name: str
    dataset: Literal["entropylong", "baseline"] = "entropylong"
    mode: Literal["uniform", "dense", "sparse"] = "uniform"
    frozen: bool = True
    kappa: float | None = Field(None, gt=0, le=1)  # sparse: this run's kept fraction (None:
    # token_weighting.kappa)

    @field_validator("name")
    @classmethod
    def _plain(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", v):
            raise ValueError(f"run name {v!r}: use letters, digits, '.', '_' and '-' only")
        return v


class TrainingSettings(_Strict):
    """Continued pretraining with DeepSpeed (models.training.TrainSettings per run)."""

    model: str | None = None  # None: models.scorer; "tiny:<layers>x<hidden>": a small random
    # Llama with the scorer's tokenizer, for a quick run on a CPU
    runs: list[TrainingRun] = [TrainingRun(name="entropylong-sparse", mode="sparse"),
                               TrainingRun(name="entropylong-uniform"),
                               TrainingRun(name="baseline-uniform", dataset="baseline")]
    steps: int = Field(_TR.steps, gt=0)
    micro_batch: int = Field(_TR.micro_batch, gt=0)
    grad_accum: int = Field(_TR.grad_accum, gt=0)
    lr: float = Field(_TR.lr, gt=0)
    warmup_steps: int = Field(_TR.warmup_steps, ge=0)
    zero_stage: int = Field(_TR.zero_stage, ge=0, le=3)
    rope_theta: float | None = _TR.rope_theta  # e.g. 15.3e6 for Llama-3 8K -> 32K
    bf16: bool = _TR.bf16
    block_size: int = Field(_TR.block_size, gt=0)
    seed: int = _TR.seed
    checkpoint_every: int = Field(_TR.checkpoint_every, ge=0)
    attention: Literal["auto", "flash_attention_2", "unit_sdpa", "dense_mask"] = _TR.attention
    # auto: FlashAttention-2 varlen on CUDA when installed, else per-unit SDPA (models.attention)
    gradient_checkpointing: bool | None = _TR.gradient_checkpointing  # None: on above 16K
    heldout_sequences: int = Field(1, ge=0)  # last packed sequences kept for evaluation
    processes: int | None = Field(_TR.processes, ge=1)  # training processes of a run (one per
    # GPU, ZeRO across them; global batch = micro_batch x grad_accum x processes); None: every
    # GPU of the pod (1 on a CPU); the pod asks for this many GPUs
    shuffle_window: int = Field(_TR.shuffle_window, ge=1)  # row groups shuffled together

    @field_validator("runs")
    @classmethod
    def _unique_runs(cls, v: list[TrainingRun]) -> list[TrainingRun]:
        names = [r.name for r in v]
        if len(set(names)) != len(names):
            raise ValueError(f"training run names must be unique: {names}")
        return v


class EvaluationSettings(_Strict):
    """RULER tasks of lm-evaluation-harness that need no download, and held-out perplexity."""

    tasks: list[str] = ["niah_single_1", "niah_multikey_2", "niah_multikey_3", "ruler_vt",
                        "ruler_cwe", "ruler_fwe"]
    lengths: list[int] = [4096]
    limit: int = Field(25, gt=0)  # samples per task and length


def _gpu_resources() -> dict:
    return {"limits": {"nvidia.com/gpu": 1, "memory": "64Gi"},
            "requests": {"cpu": "8", "memory": "48Gi"}}


class PodSettings(_Strict):
    """How one kind of step pod is placed and sized (Kubernetes field names, as in a pod)."""

    resources: dict = Field(default_factory=dict)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict] = Field(default_factory=list)
    annotations: dict[str, str] = Field(default_factory=dict)


class KubernetesSettings(_Strict):
    """Where steps run: in-process/multiprocess locally, one pod per step on a cluster."""

    enabled: bool = False  # true: the Definitions use dagster-k8s's k8s_job_executor
    namespace: str = "dagster"
    image: str | None = None  # default: the user code deployment's image
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    service_account_name: str | None = None
    max_concurrent: int = Field(16, gt=0)  # step pods of one run at a time
    env_secrets: list[str] = Field(default_factory=list)  # e.g. object-store credentials
    gpu: PodSettings = PodSettings(
        resources=_gpu_resources(),
        node_selector={"nvidia.com/gpu.present": "true"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        # a GPU step holds hours of work: the autoscaler must not evict its pod
        annotations={"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"})
    cpu: PodSettings = PodSettings(
        resources={"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"memory": "16Gi"}})


class PipelineConfig(_Strict):
    lake: str = "lake"
    catalog: str | None = None  # default: <lake>/catalog.duckdb
    corpora: list[CorpusConfig] = Field(default_factory=list)
    models: ModelsConfig = ModelsConfig()
    ingest: IngestConfig = IngestConfig()
    scoring: ScoringSettings = ScoringSettings()
    recurring: RecurringSettings = RecurringSettings()
    anchors: AnchorSettings = AnchorSettings()
    chunking: ChunkSettings = ChunkSettings()
    index: IndexSettings = IndexSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    verification: VerificationSettings = VerificationSettings()
    packing: PackingSettings = PackingSettings()
    distance_check: DistanceCheckSettings = DistanceCheckSettings()
    token_weighting: TokenWeightingSettings = TokenWeightingSettings()
    training: TrainingSettings = TrainingSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    kubernetes: KubernetesSettings = KubernetesSettings()

    @field_validator("corpora")
    @classmethod
    def _unique_names(cls, v: list[CorpusConfig]) -> list[CorpusConfig]:
        names = [c.name for c in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"corpus names must be unique; repeated: {dupes}")
        return v

    @cached_property
    def lake_store(self) -> Lake:
        return Lake(self.lake)

    @property
    def catalog_path(self) -> str:
        return self.catalog or self.lake_store.path("catalog.duckdb")

    def corpus_specs(self) -> list[CorpusSpec]:
        return [CorpusSpec(**c.model_dump(exclude={"roles"})) for c in self.corpora]

    def roles(self, corpus: str) -> list[str]:
        for c in self.corpora:
            if c.name == corpus:
                return list(c.roles)
        raise KeyError(f"corpus {corpus!r} is not configured")

    def corpus(self, name: str) -> CorpusSpec:
        for spec in self.corpus_specs():
            if spec.name == name:
                return spec
        raise KeyError(f"corpus {name!r} is not configured; configured: "
                       f"{[c.name for c in self.corpora]}")


def _absolute(location: str, base: Path) -> str:
    if is_url(location) or Path(location).is_absolute():
        return location
    return str((base / location).resolve())


def load_config(path: str | os.PathLike | None = None) -> PipelineConfig:
    """Read the config file (argument, else ``$ELONG_CONFIG``, else ``pipeline.yaml``)."""
    path = Path(path or os.environ.get("ELONG_CONFIG") or DEFAULT_CONFIG)
    if not path.is_file():
        raise FileNotFoundError(f"pipeline config {path} not found (set ELONG_CONFIG)")
    raw = yaml.safe_load(path.read_text()) or {}
    # the installed default config's relative paths (lake, demo corpora) are the user's
    # working directory's, never the installation's
    base = Path.cwd() if is_installed_file(path) else path.resolve().parent
    raw["lake"] = _absolute(raw.get("lake", "lake"), base)
    if raw.get("catalog"):
        raw["catalog"] = _absolute(raw["catalog"], base)
    for corpus in raw.get("corpora", []) or []:
        if "uri" in corpus:
            corpus["uri"] = _absolute(corpus["uri"], base)
    try:
        return PipelineConfig.model_validate(raw)
    except Exception as exc:
        raise ValueError(f"{path}: invalid pipeline config: {exc}") from exc
