-- Every (anchor, candidate chunk) row with H, H', dI, NLL before/after and the decision.
CREATE OR REPLACE VIEW verified_dependencies AS
SELECT regexp_extract(filename, '/([^/]+)/([^/]+)\.parquet$', 1) AS corpus,
       regexp_extract(filename, '/([^/]+)/([^/]+)\.parquet$', 2) AS shard,
       * EXCLUDE (filename)
FROM {verified_dependencies};
