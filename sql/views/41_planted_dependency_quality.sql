-- Planted corpus: kept (root, chunk document) pairs against the ground truth (root, source)
-- pairs, for two rules side by side: `verified` (dI > epsilon, this run's flag) and
-- `top1_unverified` (the paper's "no verification" ablation: each anchor's top-ranked
-- candidate kept as is). precision = kept pairs that are true / kept pairs;
-- recall = true pairs kept / true pairs. Only roots with ground truth are judged.
CREATE OR REPLACE VIEW planted_dependency_quality AS
WITH truth AS (SELECT DISTINCT root_doc_id, source_doc_id FROM planted_ground_truth),
kept AS (
  SELECT DISTINCT 'verified' AS rule, doc_id AS root_doc_id, chunk_doc_id AS source_doc_id
  FROM verified_dependencies WHERE verified AND mode = 'on'
  UNION ALL
  SELECT DISTINCT 'top1_unverified', doc_id, chunk_doc_id
  FROM retrieval_candidates WHERE rank = 1),
judged AS (SELECT * FROM kept WHERE root_doc_id IN (SELECT root_doc_id FROM truth)),
rules AS (SELECT * FROM (VALUES ('verified'), ('top1_unverified')) r(rule))
SELECT r.rule,
       (SELECT count(*) FROM truth) AS true_pairs,
       count(j.root_doc_id) AS kept_pairs,
       count(t.root_doc_id) AS true_kept_pairs,
       count(t.root_doc_id) / nullif(count(j.root_doc_id), 0) AS precision,
       count(t.root_doc_id) / nullif((SELECT count(*) FROM truth), 0) AS recall
FROM rules r LEFT JOIN judged j USING (rule)
LEFT JOIN truth t ON t.root_doc_id = j.root_doc_id AND t.source_doc_id = j.source_doc_id
GROUP BY r.rule ORDER BY r.rule DESC;
