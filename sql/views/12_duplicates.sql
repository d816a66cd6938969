-- Exact duplicates removed at ingest, each pointing at the document that was kept.
CREATE OR REPLACE VIEW duplicates AS SELECT * EXCLUDE (filename) FROM {duplicates};
