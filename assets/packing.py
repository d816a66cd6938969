"""`packed_dataset`: EntropyLong step 4, units of verified chunks plus root, packed."""

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from assets.common import chunk_tokens, lake_dataset
from lakehouse import tables
from lakehouse.mds_export import export_mds
from lakehouse.packing import (
    assemble,
    baseline_units,
    best_fit_decreasing,
    build_unit,
    fit_unit,
    packed_tables,
)
from lakehouse.storage import write_parquet
from models.registry import load_tokenizer
from orchestration.k8s import op_tags
from orchestration.resources import PipelineResource

SPANS_CHECK = "sequences_exact_and_spans_valid"
DATASET = "entropylong"


@dg.asset(
    op_tags=op_tags("cpu"),
    deps=["verified_dependencies"], group_name="packing", kinds={"parquet"},
    check_specs=[dg.AssetCheckSpec(SPANS_CHECK, asset="packed_dataset", blocking=True,
                                   description="every sequence is exactly target_length "
                                               "tokens; spans tile it up to the padding")],
    description="Sequences of `packing.target_length` tokens: per root a unit [verified "
                "chunks, shuffled; root], packed by best-fit decreasing, with ProLong "
                "`indices` (unit spans) and a manifest of roots and chunks per sequence.",
)
def packed_dataset(context: dg.AssetExecutionContext, pipeline: PipelineResource):
    settings = pipeline.settings
    cfg = settings.packing
    dep = lake_dataset(pipeline, "verified_dependencies").to_table(
        columns=["doc_id", "chunk_id"], filter=ds.field("verified"))
    chunks_of: dict[str, set[str]] = {}
    for d, c in zip(dep["doc_id"].to_pylist(), dep["chunk_id"].to_pylist(), strict=True):
        chunks_of.setdefault(d, set()).add(c)
    roots_table = lake_dataset(pipeline, "entropy_profiles").to_table(columns=["doc_id"])
    roots = sorted(set(roots_table["doc_id"].to_pylist()))
    if not cfg.include_roots_without_chunks:
        roots = [r for r in roots if r in chunks_of]
    root_toks = lake_dataset(pipeline, "tokenized_docs").to_table(
        columns=["doc_id", "input_ids"], filter=ds.field("doc_id").isin(
            pa.array(roots, pa.string())))
    root_ids = dict(zip(root_toks["doc_id"].to_pylist(), root_toks["input_ids"].to_pylist(),
                        strict=True))
    wanted = sorted({c for r in roots for c in chunks_of.get(r, ())})
    tokens_of = chunk_tokens(pipeline, wanted)
    units, oversize, trimmed = [], 0, 0
    for r in roots:
        unit = build_unit(r, np.asarray(root_ids[r], np.int32),
                          [(c, np.asarray(tokens_of[c], np.int32))
                           for c in sorted(chunks_of.get(r, ()))], cfg.seed)
        fitted = fit_unit(unit, cfg.target_length)
        if fitted is None:
            oversize += 1
            continue
        trimmed += fitted.length < unit.length
        units.append(fitted)
    packed, bins, seq_path, man_path, mds_path = _write_packed(
        pipeline, DATASET, units, cfg.target_length, _pad_id(settings), mds=cfg.mds)
    extra = {}
    if mds_path:
        extra["mds"] = dg.MetadataValue.path(mds_path)
        context.log.info(f"MDS export: {mds_path}")
    tokens = int(sum(u.length for u in units))
    fill = tokens / packed.input_ids.size if packed.input_ids.size else 0.0
    context.log.info(f"{len(units)} units ({tokens} tokens) -> {len(bins)} sequences of "
                     f"{cfg.target_length}, fill {fill:.3f}; {oversize} oversize roots skipped")
    yield dg.MaterializeResult(metadata={
        "sequences": len(bins), "units": len(units), "tokens": tokens, "fill_rate": fill,
        "padding_tokens": int(packed.n_pad.sum()), "oversize_roots_skipped": oversize,
        "units_trimmed": trimmed, "target_length": cfg.target_length,
        "mean_chunks_per_unit": float(np.mean([len(u.segments) - 1 for u in units]))
        if units else 0.0, "path": dg.MetadataValue.path(seq_path),
        "manifest": dg.MetadataValue.path(man_path), "dagster/row_count": len(bins), **extra})
    ok = packed.input_ids.shape[1:] == (cfg.target_length,) or not bins
    for spans, pad in zip(packed.indices, packed.n_pad, strict=True):
        ends = [0] + [b for _, b in spans]
        ok &= all(a == ends[i] for i, (a, _) in enumerate(spans))
        ok &= ends[-1] + int(pad) == cfg.target_length
    yield dg.AssetCheckResult(check_name=SPANS_CHECK, passed=bool(ok),
                              metadata={"sequences": len(bins)})


def _write_packed(pipeline: PipelineResource, dataset: str, units, target: int, pad_id: int,
                  mds: bool = False):
    """Pack, write sequences and manifest (and with ``mds`` the MDS export of the same
    sequences table); returns (packed, bins, sequences path, manifest path, MDS path)."""
    bins = best_fit_decreasing([u.length for u in units], target)
    packed = assemble(units, bins, target, pad_id)
    seqs, man = packed_tables(packed, units)
    seq_path = pipeline.lake.path("packed_dataset", dataset, "sequences.parquet")
    man_path = pipeline.lake.path("packed_dataset", dataset, "manifest.parquet")
    seq_table = pa.Table.from_pydict(seqs, schema=tables.PACKED_SEQUENCES)
    write_parquet(seq_table, seq_path)
    write_parquet(pa.Table.from_pydict(man, schema=tables.PACKED_MANIFEST), man_path)
    mds_path = export_mds(seq_table, pipeline.lake.path("packed_dataset", dataset, "mds")) \
        if mds else None
    return packed, bins, seq_path, man_path, mds_path


def _pad_id(settings) -> int:
    tokenizer, _ = load_tokenizer(settings.models.scorer)
    if tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)
    return int(tokenizer.eos_token_id or 0)


@dg.asset(
    op_tags=op_tags("cpu"),
    deps=["packed_dataset"], group_name="packing", kinds={"parquet"},
    description="The plain-concatenation baseline: random documents (no retrieved chunks) "
                "packed the same way to the same number of tokens as `packed_dataset`, so "
                "models trained on the two can be compared.",
)
def baseline_dataset(context: dg.AssetExecutionContext, pipeline: PipelineResource):
    settings = pipeline.settings
    cfg = settings.packing
    man = lake_dataset(pipeline, "packed_dataset", DATASET, "manifest.parquet").to_table(
        columns=["token_start", "token_end"])
    budget = int(pc.sum(pc.subtract(man["token_end"], man["token_start"])).as_py() or 0)
    docs = lake_dataset(pipeline, "tokenized_docs").to_table(columns=["doc_id", "input_ids"])
    units, total, passes = baseline_units(docs["doc_id"].to_pylist(),
                                          docs["input_ids"].to_pylist(), budget,
                                          cfg.target_length, cfg.seed)
    packed, bins, seq_path, _, _ = _write_packed(pipeline, "baseline", units,
                                                 cfg.target_length, _pad_id(settings))
    context.log.info(f"baseline: {len(units)} documents, {total} tokens (target {budget}) "
                     f"-> {len(bins)} sequences; {passes} pass(es) over the corpus")
    return dg.MaterializeResult(metadata={
        "sequences": len(bins), "documents": len(units), "tokens": total,
        "target_tokens": budget, "corpus_passes": passes, "path": dg.MetadataValue.path(seq_path)})
