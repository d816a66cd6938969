-- Per corpus: rows verified, kept, mean dI of kept rows (the paper reports 0.68).
CREATE OR REPLACE VIEW dependency_stats AS
SELECT corpus, any_value(mode) AS mode, any_value(epsilon) AS epsilon, count(*) AS rows,
       count(*) FILTER (WHERE verified) AS verified,
       avg(delta_i) FILTER (WHERE verified) AS mean_delta_i_verified,
       avg(delta_i) AS mean_delta_i,
       count(*) FILTER (WHERE status = 'too_long') AS too_long
FROM verified_dependencies GROUP BY corpus ORDER BY corpus;
