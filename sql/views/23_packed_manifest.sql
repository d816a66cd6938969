-- Packed sequences: one row per unit (root document and its chunks) with its token span;
-- `dataset` is the training config's name: entropylong (packed_dataset/) or baseline.
CREATE OR REPLACE VIEW packed_manifest AS
SELECT CASE regexp_extract(filename, '/([^/]+)/manifest\.parquet$', 1)
         WHEN 'packed_dataset' THEN 'entropylong' WHEN 'baseline_dataset' THEN 'baseline'
       END AS dataset,
       * EXCLUDE (filename)
FROM {packed_manifest};
