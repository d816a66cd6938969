-- Per-document entropy profiles; `entropy` and `nll` are per-token lists (index 1 = token 0,
-- which has no prediction and is NaN).
CREATE OR REPLACE VIEW entropy_profiles AS
SELECT regexp_extract(filename, '/([^/]+)/([^/]+)\.parquet$', 1) AS corpus,
       regexp_extract(filename, '/([^/]+)/([^/]+)\.parquet$', 2) AS shard,
       * EXCLUDE (filename)
FROM {entropy_profiles};
