"""Arrow schemas of the lake's tables: the data contracts of ARCHITECTURE.md, in code."""

from __future__ import annotations

import pyarrow as pa

DOCS = pa.schema([
    ("doc_id", pa.string()),
    ("corpus", pa.string()),
    ("shard", pa.string()),
    ("row_index", pa.int64()),
    ("source_id", pa.string()),
    ("text", pa.large_string()),
    ("n_chars", pa.int64()),
    ("content_hash", pa.string()),
])

QUARANTINE = pa.schema([
    ("corpus", pa.string()),
    ("shard", pa.string()),
    ("source_uri", pa.string()),
    ("row_index", pa.int64()),
    ("source_id", pa.string()),
    ("field", pa.string()),
    ("reason", pa.string()),
    ("detail", pa.string()),
    ("excerpt", pa.string()),
])

DUPLICATES = pa.schema([
    ("corpus", pa.string()),
    ("shard", pa.string()),
    ("row_index", pa.int64()),
    ("source_id", pa.string()),
    ("duplicate_of", pa.string()),  # doc_id of the first occurrence that was kept
    ("content_hash", pa.string()),
])

SHARD_STATS = pa.schema([
    ("corpus", pa.string()),
    ("shard", pa.string()),
    ("source_uri", pa.string()),
    ("source_sha256", pa.string()),
    ("source_bytes", pa.int64()),
    ("rows_in", pa.int64()),
    ("docs_out", pa.int64()),
    ("duplicates", pa.int64()),
    ("quarantined", pa.int64()),
    ("chars_out", pa.int64()),
    ("max_chars", pa.int64()),
])

GROUND_TRUTH = pa.schema([
    ("root_doc_id", pa.string()),
    ("source_doc_id", pa.string()),
    ("kind", pa.string()),  # name | place | code | number
    ("surface", pa.string()),  # the planted string as it appears in the root
    ("char_start", pa.int64()),  # span in the root's text, [start, end)
    ("char_end", pa.int64()),
])


def from_rows(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Build a table with exactly ``schema`` (an empty list gives an empty table, not an error)."""
    return pa.Table.from_pylist(rows, schema=schema)

TOKENIZED_DOCS = pa.schema([
    ("doc_id", pa.string()),
    ("n_tokens", pa.int64()),
    ("input_ids", pa.list_(pa.int32())),
    ("char_start", pa.list_(pa.int32())),
    ("char_end", pa.list_(pa.int32())),
    ("tokenizer", pa.string()),
])

ENTROPY_PROFILES = pa.schema([
    ("doc_id", pa.string()),
    ("n_tokens", pa.int64()),
    ("entropy", pa.list_(pa.float16())),  # nats; index t predicts token t; NaN at 0
    ("nll", pa.list_(pa.float16())),  # -log p(gold token); NaN at 0
    ("mean", pa.float64()),
    ("std", pa.float64()),  # the anchor rule's threshold is the anchors table's
    ("model_id", pa.string()),
    ("window", pa.int64()),
    ("overlap", pa.int64()),
])

ANCHORS = pa.schema([
    ("doc_id", pa.string()),
    ("position", pa.int64()),  # token index t whose prediction is uncertain
    ("entropy", pa.float32()),
    ("nll", pa.float32()),
    ("score", pa.float64()),  # the rule's score: H(t) (entropy) or the word's NLL sum
    ("rule", pa.string()),  # surprise | entropy (lakehouse.anchors)
    ("threshold", pa.float64()),  # tau of the rule, for this document
    ("query_mode", pa.string()),
    ("query_start", pa.int64()),  # token span of the query text
    ("query_end", pa.int64()),
    ("query", pa.string()),
])

CHUNKS = pa.schema([
    ("chunk_id", pa.string()),
    ("doc_id", pa.string()),
    ("corpus", pa.string()),
    ("shard", pa.string()),
    ("chunk_index", pa.int64()),
    ("token_start", pa.int64()),
    ("token_end", pa.int64()),
    ("n_tokens", pa.int64()),
    ("text", pa.large_string()),
    ("input_ids", pa.list_(pa.int32())),
])


def chunk_embeddings_schema(dim: int) -> pa.Schema:
    return pa.schema([
        ("chunk_id", pa.string()),
        ("doc_id", pa.string()),
        ("corpus", pa.string()),
        ("vector", pa.list_(pa.float32(), dim)),
        ("embedder", pa.string()),
    ])


RETRIEVAL_CANDIDATES = pa.schema([
    ("doc_id", pa.string()),
    ("position", pa.int64()),
    ("rank", pa.int64()),  # 1-based among kept candidates
    ("chunk_id", pa.string()),
    ("chunk_doc_id", pa.string()),
    ("score", pa.float32()),  # cosine similarity of the anchor query and the chunk
    ("excluded_self", pa.int64()),  # hits from the root document itself, dropped
    ("excluded_near_dup", pa.int64()),  # hits too close to a chunk of the root, dropped
    ("excluded_per_doc", pa.int64()),  # hits past retrieval.per_doc chunks of their document
    ("excluded_dup_candidate", pa.int64()),  # hits near-copying a better-ranked candidate
    ("found_by", pa.string()),  # dense | lexical | both: which search ranked the chunk
    ("dense_rank", pa.int64()),  # rank among the eligible dense hits; null: not found
    ("lexical_rank", pa.int64()),  # rank among the eligible BM25 hits; null: not found
    ("bm25", pa.float32()),  # BM25 score of the lexical query; null: not found lexically
    ("fused_score", pa.float32()),  # reciprocal-rank score the candidates are ordered by
    ("mode", pa.string()),  # retrieval.mode: dense | lexical | hybrid
])

VERIFIED_DEPENDENCIES = pa.schema([
    ("doc_id", pa.string()),
    ("position", pa.int64()),
    ("chunk_id", pa.string()),
    ("chunk_doc_id", pa.string()),
    ("rank", pa.int64()),
    ("h", pa.float32()),  # entropy at the anchor, document alone
    ("h_prime", pa.float32()),  # entropy at the anchor with the chunk prepended
    ("delta_i", pa.float32()),  # (h - h_prime) / h
    ("nll", pa.float32()),
    ("nll_prime", pa.float32()),
    ("verified", pa.bool_()),  # kept: passed the rule and not a dropped copy
    ("epsilon", pa.float32()),
    ("mode", pa.string()),  # on | off
    ("status", pa.string()),  # ok | too_long | unverified (mode off)
    ("rule", pa.string()),  # span | delta_i | off (lakehouse.dependencies)
    ("origin", pa.string()),  # anchor: a retrieval candidate row; span: an explained entity
    ("dependency_class", pa.string()),  # informative | copy (lakehouse.copies)
    ("copy_reason", pa.string()),  # context | recurring | context+recurring | ""
    ("passed", pa.bool_()),  # passed the rule, before copies are dropped
    ("gain", pa.float32()),  # nats of NLL the chunk removes (over the entity, span rule)
    ("relative_gain", pa.float32()),  # gain / NLL alone over the same tokens
    ("span_start", pa.int64()),  # the judged token span [span_start, span_end)
    ("span_end", pa.int64()),
    ("context_start", pa.int64()),  # first document token of the context (long documents)
])

PACKED_SEQUENCES = pa.schema([
    ("seq_id", pa.int64()),
    ("input_ids", pa.list_(pa.int32())),
    ("indices", pa.list_(pa.list_(pa.int64(), 2))),  # ProLong: [start, end) per unit
    ("n_pad", pa.int64()),
])

TRAINING_METRICS = pa.schema([
    ("run", pa.string()),
    ("step", pa.int64()),  # 0-based optimizer step
    ("loss_weighted", pa.float64()),  # sum(w * nll) / counted tokens of the step
    ("loss_unweighted", pa.float64()),  # mean NLL of the counted tokens
    ("tokens", pa.int64()),
    ("weight_mean", pa.float64()),
    ("weight_std", pa.float64()),
    ("weight_max", pa.float64()),
    ("weight_nonzero", pa.float64()),  # fraction of counted tokens with weight > 0
    ("scorable_fraction", pa.float64()),  # counted tokens with a usable score (sparse pool)
    ("lr", pa.float64()),
    ("seconds", pa.float64()),
    ("position_buckets", pa.list_(pa.string())),  # "lo-hi": position inside the unit
    ("bucket_loss", pa.list_(pa.float64())),
])

EVALUATION_RESULTS = pa.schema([
    ("run", pa.string()),
    ("dataset", pa.string()),  # entropylong | baseline
    ("mode", pa.string()),  # uniform | dense | sparse
    ("frozen", pa.bool_()),
    ("task", pa.string()),  # a RULER task, or heldout_ppl
    ("length", pa.int64()),  # RULER sequence length, or the bucket's upper position
    ("metric", pa.string()),
    ("filter", pa.string()),
    ("value", pa.float64()),
    ("tokens", pa.int64()),  # held-out tokens behind a perplexity (0 for RULER)
])

TOKEN_WEIGHTS = pa.schema([
    ("seq_id", pa.int64()),  # joins packed_dataset/<dataset>/sequences.parquet
    ("logp_short", pa.list_(pa.float32())),  # log p'(n)(x_t | ...), NaN where not run
    ("full_context", pa.list_(pa.bool_())),  # in its unit's first window: score 0, not run
    ("scorer_id", pa.string()),
    ("n", pa.int64()),
    ("stride", pa.int64()),
])

PACKED_MANIFEST = pa.schema([
    ("seq_id", pa.int64()),
    ("unit_index", pa.int64()),  # position of the unit inside the sequence
    ("root_doc_id", pa.string()),
    ("chunk_ids", pa.list_(pa.string())),  # in packed order; the root follows them
    ("token_start", pa.int64()),  # the unit's span in the sequence
    ("token_end", pa.int64()),
    ("root_start", pa.int64()),  # where the root document begins inside the unit's span
    ("root_end", pa.int64()),  # where it ends (the span's end in the unit layout)
    ("chunk_starts", pa.list_(pa.int64())),  # first token of each chunk, as chunk_ids
    ("chunk_ends", pa.list_(pa.int64())),  # one past its last token
    ("unit_tokens", pa.int64()),  # tokens of the unit: chunks, root (and its BOS, unit layout)
    ("layout", pa.string()),  # packing.layout: unit | sequence (span: the whole sequence)
])

PACKED_DEPENDENCIES = pa.schema([  # packed_dataset/dependencies.parquet
    ("seq_id", pa.int64()),
    ("root_doc_id", pa.string()),
    ("chunk_id", pa.string()),
    ("position", pa.int64()),  # the anchor's token position in the root document
    ("anchor_position", pa.int64()),  # ... and in the packed sequence
    ("chunk_start", pa.int64()),  # the chunk's tokens [chunk_start, chunk_end) in the sequence
    ("chunk_end", pa.int64()),
    ("distance", pa.int64()),  # anchor_position - chunk_start
    ("distance_nearest", pa.int64()),  # anchor_position - (chunk_end - 1): to its last token
    ("span_start", pa.int64()),  # start of the attention span holding both
    ("delta_i", pa.float32()),  # the verification row's dI (chunk adjacent to the root)
    ("layout", pa.string()),  # unit | sequence
])

DISTANCE_CHECK = pa.schema([  # distance_check/<dataset>.parquet: sampled packed dependencies
    ("dataset", pa.string()),  # entropylong
    ("seq_id", pa.int64()),
    ("root_doc_id", pa.string()),
    ("chunk_id", pa.string()),
    ("position", pa.int64()),  # the anchor in the root
    ("anchor_position", pa.int64()),  # ... and in the packed sequence
    ("distance", pa.int64()),  # anchor_position - chunk_start
    ("layout", pa.string()),
    ("context_tokens", pa.int64()),  # tokens fed with the chunk, anchor included
    ("h_with", pa.float32()),  # entropy at the anchor on the packed context
    ("h_without", pa.float32()),  # ... with the chunk's tokens taken out
    ("nll_with", pa.float32()),
    ("nll_without", pa.float32()),
    ("delta_i_adjacent", pa.float32()),  # verification's dI: chunk right before the root
    ("delta_i_at_distance", pa.float32()),  # (h_without - h_with) / h_without
    ("h_moved", pa.float32()),  # same context, the chunk moved to right before its root
    ("delta_i_moved", pa.float32()),  # (h_without - h_moved) / h_without: distance's control
    ("status", pa.string()),  # ok | no_context
    ("scorer_id", pa.string()),
])
