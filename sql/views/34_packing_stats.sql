-- Per packed dataset: sequences, units, chunks per unit, tokens used by units.
CREATE OR REPLACE VIEW packing_stats AS
SELECT dataset, count(DISTINCT seq_id) AS sequences, count(*) AS units,
       avg(len(chunk_ids)) AS chunks_per_unit, sum(unit_tokens) AS unit_tokens
FROM packed_manifest GROUP BY dataset ORDER BY dataset;
