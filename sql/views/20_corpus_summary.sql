-- Per corpus: shards, rows read, documents kept, duplicates, quarantined rows, characters.
CREATE OR REPLACE VIEW corpus_summary AS
SELECT corpus,
       count(*)          AS shards,
       sum(rows_in)      AS rows_in,
       sum(docs_out)     AS docs,
       sum(duplicates)   AS duplicates,
       sum(quarantined)  AS quarantined,
       sum(chars_out)    AS chars,
       sum(rows_in) = sum(docs_out) + sum(duplicates) + sum(quarantined) AS balanced
FROM shard_stats
GROUP BY corpus
ORDER BY corpus;
