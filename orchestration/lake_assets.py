"""One way to declare a lake asset, so that what Dagster shows is what runs.

An asset module declares each asset with :func:`lake_asset`: its compute function, the lake
tables it reads (name and scope: this shard's partition or every partition), the settings
whose values it depends on, its partitions and its step kind. :func:`build_assets` turns the
declarations into Dagster assets for one configuration:

- **deps follow from the reads.** The same declaration gives Dagster its lineage (with the
  partition mapping each scope means) and gives the compute function its only way to read:
  :class:`StageContext` refuses a table it did not declare, so an undeclared read fails the
  run instead of hiding from the UI. :func:`recorded_reads` lists what was read, so a test
  can compare reads with deps.
- **settings version the asset.** The values of the declared settings are hashed into the
  asset's code version, so changing ``anchors.alpha`` marks ``anchors`` and everything
  downstream stale in the UI, and nothing upstream.
- **placement comes from the config** (Kubernetes op tags for GPU and CPU steps) when the
  definitions are built, never at import time.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import dagster as dg
import pyarrow as pa
import pyarrow.dataset as ds

from lakehouse.corpora import split_key
from lakehouse.storage import exists, read_parquet, write_parquet
from orchestration.config import PipelineConfig
from orchestration.k8s import StepKind, op_tags
from orchestration.partitions import (
    PER_SHARD_BACKFILL,
    root_shards_partitions,
    runs_partitions,
    shards_partitions,
)
from orchestration.resources import PipelineResource

# Bump when an asset's code changes its output for the same settings.
CODE_REVISION = "4"

Scope = Literal["shard", "all"]
Partitioning = Literal["shards", "root_shards", "runs"] | None
PARTITIONS = {"shards": shards_partitions, "root_shards": root_shards_partitions,
              "runs": runs_partitions, None: None}

# External inputs that are not lake tables of an asset (files beside the corpora).
PLANTED_GROUND_TRUTH = "planted_ground_truth"


@dataclass(frozen=True)
class LakeAsset:
    """The declaration of one lake asset (or several written by one step: ``outputs``)."""

    name: str
    fn: Callable[[StageContext], Any]
    reads: dict[str, Scope]
    settings: tuple[str, ...]
    partitions: Partitioning
    step: StepKind
    group: str
    description: str
    kinds: frozenset[str]
    outputs: dict[str, str]  # extra assets the step writes: name -> description
    checks: tuple[dg.AssetCheckSpec, ...]
    automation: dg.AutomationCondition | None
    retry: dg.RetryPolicy | None
    pool: str | None


REGISTRY: dict[str, LakeAsset] = {}


def lake_asset(*, reads: dict[str, Scope] | None = None, settings: Iterable[str] = (),
               partitions: Partitioning = None, step: StepKind = "cpu",
               group: str, description: str, kinds: Iterable[str] = ("parquet",),
               outputs: dict[str, str] | None = None,
               checks: Iterable[tuple[str, str, bool]] = (),
               automation: dg.AutomationCondition | None = None,
               retry: dg.RetryPolicy | None = None, pool: str | None = None):
    """Declare the decorated ``fn(ctx: StageContext)`` as a lake asset named after it.

    ``checks``: (name, description, blocking) of the asset checks the function yields.
    """
    def register(fn: Callable[[StageContext], Any]) -> LakeAsset:
        name = fn.__name__
        spec = LakeAsset(
            name=name, fn=fn, reads=dict(reads or {}), settings=tuple(settings),
            partitions=partitions, step=step, group=group, description=description,
            kinds=frozenset(kinds), outputs=dict(outputs or {}),
            checks=tuple(dg.AssetCheckSpec(c, asset=name, description=d, blocking=b)
                         for c, d, b in checks),
            automation=automation, retry=retry, pool=pool)
        REGISTRY[name] = spec
        return spec
    return register


# -- reads ---------------------------------------------------------------------------------

_RECORD = threading.local()


@contextmanager
def recorded_reads() -> Iterator[list[tuple[str, str, str]]]:
    """Collect (asset, input, scope) for every lake read made in this thread meanwhile."""
    _RECORD.reads = []
    try:
        yield _RECORD.reads
    finally:
        _RECORD.reads = None


def _record(asset: str, table: str, scope: str) -> None:
    reads = getattr(_RECORD, "reads", None)
    if reads is not None:
        reads.append((asset, table, scope))


class UndeclaredRead(RuntimeError):
    pass


@dataclass
class StageContext:
    """What a lake asset's compute function gets: its settings, its declared inputs, its
    outputs, and Dagster's log. The only door to the lake, so reads match the lineage."""

    asset: LakeAsset
    pipeline: PipelineResource
    dagster: dg.AssetExecutionContext
    _written: list[str] = field(default_factory=list)

    @property
    def settings(self) -> PipelineConfig:
        return self.pipeline.settings

    @property
    def log(self):
        return self.dagster.log

    @property
    def partition_key(self) -> str:
        return self.dagster.partition_key

    @property
    def corpus_shard(self) -> tuple[str, str]:
        return split_key(self.partition_key)

    def _declared(self, table: str, scope: Scope) -> None:
        declared = self.asset.reads.get(table)
        if declared is None:
            raise UndeclaredRead(f"asset {self.asset.name} read {table!r}, which it does not "
                                 f"declare (declared: {sorted(self.asset.reads)})")
        if declared != scope:
            raise UndeclaredRead(f"asset {self.asset.name} read {scope} of {table!r} but "
                                 f"declares {declared}")
        _record(self.asset.name, table, scope)

    def shard_table(self, table: str, columns: list[str] | None = None) -> pa.Table:
        """This partition's file of an upstream per-shard asset, or a clear error."""
        self._declared(table, "shard")
        corpus, shard = self.corpus_shard
        path = self.pipeline.lake.shard_path(table, corpus, shard)
        if not exists(path):
            raise FileNotFoundError(f"{path}: upstream asset {table} has not been "
                                    f"materialized for partition {corpus}/{shard}")
        return read_parquet(path, columns=columns)

    def lake_dataset(self, table: str, *parts: str) -> ds.Dataset:
        """Every partition of an upstream asset (or a file below it) as one Arrow dataset."""
        self._declared(table, "all")
        return ds.dataset(self.pipeline.lake.path(table, *parts), format="parquet")

    def input_path(self, table: str, *parts: str, scope: Scope = "all") -> str:
        """A path below an upstream asset's folder, for readers that take a path."""
        self._declared(table, scope)
        return self.pipeline.lake.path(table, *parts)

    def ground_truth(self) -> list[dict]:
        """Rows of every configured planted corpus's ground truth (empty for real corpora)."""
        from lakehouse.demo import ground_truth_files

        self._declared(PLANTED_GROUND_TRUTH, "all")
        return [t for f in ground_truth_files(self.settings.corpus_specs())
                for t in read_parquet(f).to_pylist()]

    def ground_truth_files(self) -> list[str]:
        from lakehouse.demo import ground_truth_files

        self._declared(PLANTED_GROUND_TRUTH, "all")
        return ground_truth_files(self.settings.corpus_specs())

    # -- writes ----------------------------------------------------------------------------

    def _own(self, asset: str | None) -> str:
        name = asset or self.asset.name
        if name != self.asset.name and name not in self.asset.outputs:
            raise UndeclaredRead(f"asset {self.asset.name} may not write {name!r}")
        return name

    def output_path(self, *parts: str, asset: str | None = None) -> str:
        """A path below this asset's own lake folder (or one of its declared outputs)."""
        return self.pipeline.lake.path(self._own(asset), *parts)

    def write_shard(self, table: pa.Table, asset: str | None = None) -> str:
        """This partition's file of this asset (atomic)."""
        corpus, shard = self.corpus_shard
        return write_parquet(table, self.pipeline.lake.shard_path(self._own(asset), corpus,
                                                                  shard))


# -- building ------------------------------------------------------------------------------

def settings_fingerprint(config: PipelineConfig, paths: Iterable[str]) -> str:
    """A short hash of the values at the dotted config ``paths`` (e.g. ``anchors``,
    ``models.scorer``)."""
    dumped = config.model_dump(mode="json")
    values = {}
    for path in paths:
        node: Any = dumped
        for part in path.split("."):
            node = node[part]
        values[path] = node
    blob = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _dep(upstream: LakeAsset | None, table: str, scope: Scope,
         partitions: Partitioning) -> dg.AssetDep:
    if partitions is None or upstream is None or upstream.partitions is None:
        return dg.AssetDep(table)
    if scope == "all":
        return dg.AssetDep(table, partition_mapping=dg.AllPartitionMapping())
    return dg.AssetDep(table, partition_mapping=dg.IdentityPartitionMapping())


def _owner(table: str) -> LakeAsset | None:
    """The declaration that writes ``table`` (itself, or the step listing it in outputs)."""
    if table in REGISTRY:
        return REGISTRY[table]
    return next((a for a in REGISTRY.values() if table in a.outputs), None)


def lineage_settings(spec: LakeAsset) -> list[str]:
    """The settings an asset's output depends on: its own and every upstream asset's.

    Dagster marks an asset stale when its own code version changed, but does not pass that
    on to what was computed from it; versioning each asset by its whole lineage's settings
    makes a change of ``anchors.alpha`` mark ``anchors`` and everything downstream stale.
    """
    seen: set[str] = set()
    paths: set[str] = set()
    todo = [spec]
    while todo:
        current = todo.pop()
        if current.name in seen:
            continue
        seen.add(current.name)
        paths.update(current.settings)
        todo.extend(o for t in current.reads if (o := _owner(t)) is not None)
    return sorted(paths)


def _build_one(spec: LakeAsset, config: PipelineConfig) -> dg.AssetsDefinition:
    version = f"{CODE_REVISION}-{settings_fingerprint(config, lineage_settings(spec))}"
    deps = [_dep(_owner(t), t, s, spec.partitions) for t, s in spec.reads.items()]
    partitions_def = PARTITIONS[spec.partitions]
    specs = [dg.AssetSpec(spec.name, deps=deps, description=spec.description,
                          group_name=spec.group, kinds=set(spec.kinds), code_version=version,
                          automation_condition=spec.automation,
                          partitions_def=partitions_def)]
    specs += [dg.AssetSpec(name, deps=[spec.name], description=desc, group_name=spec.group,
                           kinds=set(spec.kinds), code_version=version,
                           partitions_def=partitions_def)
              for name, desc in spec.outputs.items()]

    @dg.multi_asset(name=spec.name, specs=specs, check_specs=list(spec.checks),
                    partitions_def=partitions_def, op_tags=op_tags(spec.step, config.kubernetes,
                                                                      config.training.processes),
                    backfill_policy=PER_SHARD_BACKFILL if spec.partitions else None,
                    retry_policy=spec.retry, pool=spec.pool)
    def compute(context, pipeline: PipelineResource):
        result = spec.fn(StageContext(spec, pipeline, context))
        if result is None:
            return
        if isinstance(result, dg.MaterializeResult | dg.AssetCheckResult):
            yield result
            return
        yield from result

    return compute


def external_inputs() -> list[dg.AssetSpec]:
    """Inputs the pipeline reads but does not make (shown in the lineage, never run)."""
    return [dg.AssetSpec(PLANTED_GROUND_TRUTH, group_name="ingest",
                         description="Ground truth of planted demo corpora (root, fact span, "
                                     "source), written beside the corpora by "
                                     "`elong demo-corpora`.")]


def build_assets(config: PipelineConfig) -> list[dg.AssetsDefinition | dg.AssetSpec]:
    """Every registered lake asset as a Dagster asset for this configuration."""
    return [_build_one(spec, config) for spec in REGISTRY.values()] + external_inputs()
