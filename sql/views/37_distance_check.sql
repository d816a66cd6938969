-- dI at distance: sampled packed dependencies re-scored on the packed sequence itself (the
-- distance_check asset), beside the dI verification measured with the chunk right before
-- its root. delta_i_moved: the same context with the chunk moved next to its root, the
-- control that tells distance from the rest of the sequence.
CREATE OR REPLACE VIEW distance_checks AS SELECT * EXCLUDE (filename) FROM {distance_checks};

CREATE OR REPLACE VIEW distance_check_summary AS
SELECT dataset, layout, count(*) AS sampled,
       quantile_cont(distance, 0.5) AS median_distance, max(distance) AS max_distance,
       avg(delta_i_adjacent) AS mean_delta_i_adjacent,
       avg(delta_i_at_distance) AS mean_delta_i_at_distance,
       avg(delta_i_moved) AS mean_delta_i_moved,
       avg((delta_i_at_distance > 0)::INTEGER) AS share_at_distance_positive,
       avg(h_with) AS mean_h_with, avg(h_without) AS mean_h_without
FROM distance_checks WHERE status = 'ok' GROUP BY dataset, layout ORDER BY dataset, layout;
