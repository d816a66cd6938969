-- Packed sequences: one row per unit (root document and its chunks) with its token span.
CREATE OR REPLACE VIEW packed_manifest AS
SELECT regexp_extract(filename, '/([^/]+)/manifest\.parquet$', 1) AS dataset,
       * EXCLUDE (filename)
FROM {packed_manifest};
