SELECT corpus, shard, row_index, reason, field, detail FROM quarantine ORDER BY corpus, shard, row_index;
