-- Training runs: per-step metrics, and one evaluation table across runs.
CREATE OR REPLACE VIEW training_metrics AS SELECT * EXCLUDE (filename) FROM {training_metrics};
CREATE OR REPLACE VIEW evaluation_results AS
SELECT * EXCLUDE (filename) FROM {evaluation_results};
