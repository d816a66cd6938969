-- One row per ingested shard: source file, content hash and the conservation counts.
CREATE OR REPLACE VIEW shard_stats AS SELECT * EXCLUDE (filename) FROM {shard_stats};
