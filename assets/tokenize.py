"""`tokenized_docs`: token ids and character offsets of every document of a shard."""

import time

import dagster as dg
import pyarrow as pa

from lakehouse import tables
from models.registry import load_tokenizer
from models.tokenize import tokenize_texts
from orchestration.automation import FOLLOW_INPUTS
from orchestration.lake_assets import StageContext, lake_asset

TOKEN_CHECK = "token_offsets_valid"


@lake_asset(
    partitions="shards", reads={"corpus_shards": "shard"}, settings=["models.scorer"],
    group="ingest", kinds=["parquet", "python"], automation=FOLLOW_INPUTS,
    checks=[(TOKEN_CHECK, "one row per document; offsets inside the text", True)],
    description="Token ids (the scorer's tokenizer, no special tokens) with character offsets.",
)
def tokenized_docs(ctx: StageContext):
    docs = ctx.shard_table("corpus_shards", ["doc_id", "text"])
    tokenizer, tokenizer_id = load_tokenizer(ctx.settings.models.scorer)
    start = time.perf_counter()
    texts = docs["text"].to_pylist()
    toks = tokenize_texts(tokenizer, texts)
    table = pa.Table.from_pydict({
        "doc_id": docs["doc_id"], "n_tokens": [len(t.input_ids) for t in toks],
        "input_ids": [t.input_ids for t in toks], "char_start": [t.char_start for t in toks],
        "char_end": [t.char_end for t in toks], "tokenizer": [tokenizer_id] * len(toks),
    }, schema=tables.TOKENIZED_DOCS)
    path = ctx.write_shard(table)
    n_tokens = sum(len(t.input_ids) for t in toks)
    rate = n_tokens / max(time.perf_counter() - start, 1e-9)
    ctx.log.info(f"{ctx.partition_key}: {len(toks)} docs, {n_tokens} tokens ({rate:,.0f}/s)")
    offsets_ok = all(len(t.char_end) == 0 or int(t.char_end.max()) <= len(text)
                     for t, text in zip(toks, texts, strict=True))
    yield dg.MaterializeResult(metadata={
        "docs": len(toks), "tokens": n_tokens, "tokenizer": tokenizer_id,
        "dagster/row_count": len(toks), "path": dg.MetadataValue.path(path)})
    yield dg.AssetCheckResult(check_name=TOKEN_CHECK,
                              passed=table.num_rows == docs.num_rows and offsets_ok,
                              metadata={"docs_in": docs.num_rows, "rows_out": table.num_rows})
