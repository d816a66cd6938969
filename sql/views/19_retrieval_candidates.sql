-- Top-K candidate chunks per anchor (self and near-duplicate hits excluded and counted).
CREATE OR REPLACE VIEW retrieval_candidates AS
SELECT regexp_extract(filename, '/([^/]+)/([^/]+)\.parquet$', 1) AS corpus,
       regexp_extract(filename, '/([^/]+)/([^/]+)\.parquet$', 2) AS shard,
       * EXCLUDE (filename)
FROM {retrieval_candidates};
