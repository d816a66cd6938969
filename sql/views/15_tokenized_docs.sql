-- Token counts per document with the scorer's tokenizer (ids and offsets left out).
CREATE OR REPLACE VIEW tokenized_docs AS
SELECT regexp_extract(filename, '/([^/]+)/([^/]+)\.parquet$', 1) AS corpus,
       regexp_extract(filename, '/([^/]+)/([^/]+)\.parquet$', 2) AS shard,
       doc_id, n_tokens, tokenizer
FROM {tokenized_docs};
