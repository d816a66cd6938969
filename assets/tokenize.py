"""`tokenized_docs`: token ids and character offsets of every document of a shard."""

import time

import dagster as dg
import pyarrow as pa

from assets.common import read_shard_table, shard_key, write_shard_table
from lakehouse import tables
from models.registry import load_tokenizer
from models.tokenize import tokenize_texts
from orchestration.k8s import op_tags
from orchestration.partitions import PER_SHARD_BACKFILL, shards_partitions
from orchestration.resources import PipelineResource

TOKEN_CHECK = "token_offsets_valid"


@dg.asset(
    op_tags=op_tags("cpu"),
    partitions_def=shards_partitions, backfill_policy=PER_SHARD_BACKFILL,
    deps=["corpus_shards"], group_name="entropy",
    kinds={"parquet", "python"},
    check_specs=[dg.AssetCheckSpec(TOKEN_CHECK, asset="tokenized_docs", blocking=True,
                                   description="one row per document; offsets inside the text")],
    description="Token ids (the scorer's tokenizer, no special tokens) with character offsets.",
)
def tokenized_docs(context: dg.AssetExecutionContext, pipeline: PipelineResource):
    corpus, shard = shard_key(context)
    docs = read_shard_table(pipeline, "corpus_shards", corpus, shard, ["doc_id", "text"])
    tokenizer, tokenizer_id = load_tokenizer(pipeline.settings.models.scorer)
    start = time.perf_counter()
    texts = docs["text"].to_pylist()
    toks = tokenize_texts(tokenizer, texts)
    table = pa.Table.from_pydict({
        "doc_id": docs["doc_id"],
        "n_tokens": [len(t.input_ids) for t in toks],
        "input_ids": [t.input_ids for t in toks],
        "char_start": [t.char_start for t in toks],
        "char_end": [t.char_end for t in toks],
        "tokenizer": [tokenizer_id] * len(toks),
    }, schema=tables.TOKENIZED_DOCS)
    path = write_shard_table(pipeline, "tokenized_docs", corpus, shard, table)
    n_tokens = sum(len(t.input_ids) for t in toks)
    elapsed = time.perf_counter() - start
    context.log.info(f"{context.partition_key}: {len(toks)} docs, {n_tokens} tokens "
                     f"({n_tokens / max(elapsed, 1e-9):,.0f} tokens/s)")
    offsets_ok = all(len(t.char_end) == 0 or int(t.char_end.max()) <= len(text)
                     for t, text in zip(toks, texts, strict=True))
    yield dg.MaterializeResult(metadata={
        "docs": len(toks), "tokens": n_tokens, "tokenizer": tokenizer_id,
        "dagster/row_count": len(toks), "path": dg.MetadataValue.path(path)})
    yield dg.AssetCheckResult(check_name=TOKEN_CHECK,
                              passed=table.num_rows == docs.num_rows and offsets_ok,
                              metadata={"docs_in": docs.num_rows, "rows_out": table.num_rows})
