-- Planted long-range dependencies of the `planted` demo corpus (empty for other corpora).
CREATE OR REPLACE VIEW planted_ground_truth AS SELECT * EXCLUDE (filename) FROM {ground_truth};
