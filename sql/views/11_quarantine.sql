-- Rows that did not become documents, with the reason, field and detail per row.
CREATE OR REPLACE VIEW quarantine AS SELECT * EXCLUDE (filename) FROM {quarantine};
