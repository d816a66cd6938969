-- Runs side by side: each RULER task (mean over lengths) and held-out perplexity by position,
-- one column per run, with the run's data and loss. Uniform vs dense vs sparse, EntropyLong
-- data vs the plain-concatenation baseline.
CREATE OR REPLACE VIEW run_comparison AS
SELECT run, any_value(dataset) AS dataset, any_value(mode) AS mode,
       any_value(frozen) AS frozen, task, metric, avg(value) AS value
FROM evaluation_results GROUP BY run, task, metric ORDER BY task, metric, run;
