-- Per shard: documents scored, tokens, mean entropy and its spread (thresholds: anchor_stats).
CREATE OR REPLACE VIEW entropy_stats AS
SELECT corpus, shard, count(*) AS docs, sum(n_tokens) AS tokens,
       avg(mean) AS mean_entropy, avg(std) AS mean_std,
       any_value(model_id) AS model_id
FROM entropy_profiles
GROUP BY corpus, shard
ORDER BY corpus, shard;
