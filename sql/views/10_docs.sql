-- Cleaned, de-duplicated documents: one row per document, all corpora and shards.
CREATE OR REPLACE VIEW docs AS SELECT * EXCLUDE (filename) FROM {docs};
