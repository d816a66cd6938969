"""`packed_dataset` and `baseline_dataset`: EntropyLong step 4 and the plain-concatenation
baseline it is compared with, each in its own lake folder."""

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from assets.common import image
from lakehouse.mds_export import export_mds
from lakehouse.packed_files import SEQUENCES, write_sequences
from lakehouse.packing import (
    PackedDataset,
    PackingSettings,
    dependencies_valid,
    pack_baseline,
    pack_entropylong,
    spans_exact,
)
from lakehouse.plots import histogram_png
from lakehouse.storage import write_parquet
from models.registry import load_tokenizer
from models.scoring import resolve_bos
from orchestration.automation import follow_only
from orchestration.lake_assets import StageContext, lake_asset

SPANS_CHECK = "sequences_exact_and_spans_valid"
DEPENDENCIES_FILE = "dependencies.parquet"
DISTANCE_CHECK = "dependencies_precede_their_anchors"
DISTANCE_DOC = ("every packed dependency's chunk lies wholly before its anchor, inside the "
                "attention span that holds the anchor's root")
CHECK_DOC = "every sequence is exactly target_length tokens; spans tile it up to the padding"


def special_tokens(settings) -> tuple[int, int | None]:
    """(padding id, BOS id or None) of the scorer's tokenizer: the BOS every unit starts with
    when the scorer runs with one (``scoring.bos``, as entropy and verification do)."""
    tokenizer, _ = load_tokenizer(settings.models.scorer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else \
        (tokenizer.eos_token_id or 0)
    return int(pad), resolve_bos(tokenizer, settings.scoring.bos)


def _write(ctx: StageContext, data: PackedDataset, cfg: PackingSettings, mds: bool = False):
    """Write sequences (bounded part files) and manifest below the asset's folder; yield
    its result and check."""
    parts = write_sequences(data.sequences, ctx.output_path(), cfg.max_file_mb,
                            cfg.row_group_rows, ctx.pipeline.lake.settings.upload_part_bytes)
    man_path = write_parquet(data.manifest, ctx.output_path("manifest.parquet"))
    extra: dict = {}
    if data.dependencies is not None:
        extra["dependencies"] = dg.MetadataValue.path(write_parquet(
            data.dependencies, ctx.output_path(DEPENDENCIES_FILE)))
        d = data.dependencies["distance"].to_numpy()
        if d.size:
            extra["distance_histogram"] = image(histogram_png(
                d.astype(np.float64), f"{ctx.asset.name} ({cfg.layout} layout): distance from "
                f"chunk start to anchor, {d.size} dependencies", "tokens",
                vlines={"median": float(np.median(d))}), "dependency distance histogram")
    extra.update({"mds": dg.MetadataValue.path(export_mds(
        data.sequences, ctx.output_path("mds"), size_limit=int(cfg.max_file_mb * (1 << 20))))
                  } if mds else {})
    s = data.stats
    ctx.log.info(f"{ctx.asset.name}: {s['units']} units ({s['tokens']} tokens) -> "
                 f"{s['sequences']} sequences of {s['target_length']}, fill "
                 f"{s['fill_rate']:.3f}")
    yield dg.MaterializeResult(metadata={
        **s, "path": dg.MetadataValue.path(ctx.output_path(SEQUENCES)), "files": len(parts),
        "manifest": dg.MetadataValue.path(man_path), "dagster/row_count": s["sequences"],
        **extra})
    yield dg.AssetCheckResult(check_name=SPANS_CHECK, metadata={"sequences": s["sequences"]},
                              passed=spans_exact(data.sequences, s["target_length"]))
    if data.dependencies is not None:
        yield dg.AssetCheckResult(check_name=DISTANCE_CHECK,
                                  metadata={"dependencies": data.dependencies.num_rows},
                                  passed=dependencies_valid(data.dependencies, data.manifest))


def _tokens(dataset: ds.Dataset, id_column: str, ids: list[str]) -> dict[str, list]:
    t = dataset.to_table(columns=[id_column, "input_ids"],
                         filter=ds.field(id_column).isin(pa.array(ids, pa.string())))
    return dict(zip(t[id_column].to_pylist(), t["input_ids"].to_pylist(), strict=True))


@lake_asset(
    reads={"verified_dependencies": "all", "entropy_profiles": "all", "tokenized_docs": "all",
           "chunks": "all"},
    settings=["packing", "models.scorer", "scoring.bos"], group="packing",
    automation=follow_only("verified_dependencies"),
    checks=[(SPANS_CHECK, CHECK_DOC, True), (DISTANCE_CHECK, DISTANCE_DOC, True)],
    description="Sequences of `packing.target_length` tokens: per root a unit [verified "
                "chunks, shuffled; root], packed by best-fit decreasing, with ProLong "
                "`indices` (`packing.layout`: unit, one span per unit; sequence, one span "
                "per sequence with the chunks of all its roots shuffled over it, each root "
                "after its own), written as bounded part files `sequences/part-*.parquet`; a "
                "manifest of roots and chunks per sequence and `dependencies.parquet`, each "
                "verified dependency's distance (anchor minus chunk start) in tokens.",
)
def packed_dataset(ctx: StageContext):
    cfg = ctx.settings.packing
    dep = ctx.lake_dataset("verified_dependencies").to_table(
        columns=["doc_id", "chunk_id", "position", "delta_i"], filter=ds.field("verified"))
    chunks_of: dict[str, set[str]] = {}
    best: dict[tuple[str, str, int], float] = {}  # one row per (root, chunk, anchor)
    for d, c, t, di in zip(*(dep[k].to_pylist() for k in dep.column_names), strict=True):
        chunks_of.setdefault(d, set()).add(c)
        di = float("nan") if di is None else di
        if not best.get((d, c, t), -np.inf) >= di:  # the largest dI (NaN only if all are)
            best[(d, c, t)] = di
    anchors: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for (d, c, t), di in sorted(best.items()):
        anchors.setdefault((d, c), []).append((t, di))
    roots = sorted(set(ctx.lake_dataset("entropy_profiles").to_table(
        columns=["doc_id"])["doc_id"].to_pylist()))
    wanted = roots if cfg.include_roots_without_chunks else [r for r in roots if r in chunks_of]
    root_tokens = _tokens(ctx.lake_dataset("tokenized_docs"), "doc_id", wanted)
    chunk_tokens = _tokens(ctx.lake_dataset("chunks"), "chunk_id",
                           sorted({c for r in wanted for c in chunks_of.get(r, ())}))
    pad, bos = special_tokens(ctx.settings)
    data = pack_entropylong({r: sorted(c) for r, c in chunks_of.items()}, wanted, root_tokens,
                            chunk_tokens, cfg.target_length, pad, cfg.seed,
                            cfg.include_roots_without_chunks, bos=bos, layout=cfg.layout,
                            anchors=anchors)
    yield from _write(ctx, data, cfg, mds=cfg.mds)


@lake_asset(
    reads={"packed_dataset": "all", "tokenized_docs": "all"},
    settings=["packing", "models.scorer", "scoring.bos"], group="packing",
    automation=follow_only("packed_dataset"), checks=[(SPANS_CHECK, CHECK_DOC, True)],
    description="The plain-concatenation baseline: random documents (no retrieved chunks) "
                "packed the same way to the same number of tokens as `packed_dataset`, so "
                "models trained on the two can be compared.",
)
def baseline_dataset(ctx: StageContext):
    cfg = ctx.settings.packing
    man = ctx.lake_dataset("packed_dataset", "manifest.parquet").to_table(
        columns=["unit_tokens"])
    budget = int(pc.sum(man["unit_tokens"]).as_py() or 0)
    docs = ctx.lake_dataset("tokenized_docs").to_table(columns=["doc_id", "input_ids"])
    pad, bos = special_tokens(ctx.settings)
    data = pack_baseline(docs["doc_id"].to_pylist(), docs["input_ids"].to_pylist(), budget,
                         cfg.target_length, pad, cfg.seed, bos=bos, layout=cfg.layout)
    yield from _write(ctx, data, cfg)


DATASET_ASSETS = {"entropylong": "packed_dataset", "baseline": "baseline_dataset"}


def dataset_asset(dataset: str) -> str:
    """The asset holding a packed dataset by its name in the config (`runs[].dataset`)."""
    return DATASET_ASSETS[dataset]



