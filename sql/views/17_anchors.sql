-- High-entropy anchors with their retrieval queries.
CREATE OR REPLACE VIEW anchors AS
SELECT regexp_extract(filename, '/([^/]+)/([^/]+)\.parquet$', 1) AS corpus,
       regexp_extract(filename, '/([^/]+)/([^/]+)\.parquet$', 2) AS shard,
       * EXCLUDE (filename)
FROM {anchors};
