-- Trained runs compared (empty until `evaluation` has run).
SELECT run, dataset, mode, frozen, task, metric, round(value, 4) AS value FROM run_comparison;
