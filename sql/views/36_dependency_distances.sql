-- Every packed verified dependency (root, chunk, anchor) with its distance in the packed
-- sequence: anchor position minus the chunk's first token (distance_nearest: minus its
-- last). The unit layout keeps each dependency inside one unit; the sequence layout spreads
-- them over the whole sequence. Then, per dataset and layout, the distribution.
CREATE OR REPLACE VIEW packed_dependencies AS
SELECT CASE regexp_extract(filename, '/([^/]+)/dependencies\.parquet$', 1)
         WHEN 'packed_dataset' THEN 'entropylong' WHEN 'baseline_dataset' THEN 'baseline'
       END AS dataset,
       * EXCLUDE (filename)
FROM {packed_dependencies};

CREATE OR REPLACE VIEW dependency_distances AS
SELECT dataset, layout, count(*) AS dependencies,
       count(DISTINCT (root_doc_id, chunk_id)) AS pairs,
       quantile_cont(distance, 0.1) AS p10, quantile_cont(distance, 0.5) AS median,
       quantile_cont(distance, 0.9) AS p90, max(distance) AS max,
       avg(distance) AS mean, avg(distance_nearest) AS mean_nearest,
       avg((distance > 1024)::INTEGER) AS share_beyond_1k,
       avg((distance > 4096)::INTEGER) AS share_beyond_4k,
       avg((distance > 32768)::INTEGER) AS share_beyond_32k,
       avg(delta_i) AS mean_delta_i_adjacent
FROM packed_dependencies GROUP BY dataset, layout ORDER BY dataset, layout;
