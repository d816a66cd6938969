-- Planted corpus: what verification keeps, judged against the ground truth, for two rules
-- side by side: `verified` (dI > epsilon, this run's flag) and `top1_unverified` (the
-- paper's "no verification" ablation: each anchor's top-ranked candidate kept as is, over
-- the anchor rows retrieval produced).
-- Two levels:
--   span: rows whose anchor lies inside a planted span, the only positions the ground truth
--         labels. precision = kept rows whose chunk comes from the true source / kept rows
--         there; recall = planted spans with a kept true-source row / all planted spans.
--   pair: (root, chunk document) pairs. precision = kept pairs that are a true (root,
--         source) pair / kept pairs, so a chunk kept for an unlabelled topical dependency
--         (a same-topic distractor that does cut entropy at a topic word) counts as false;
--         recall = true pairs kept / true pairs.
CREATE OR REPLACE VIEW planted_dependency_quality AS
WITH truth AS (SELECT DISTINCT root_doc_id, source_doc_id FROM planted_ground_truth),
spans AS (
  SELECT g.root_doc_id, g.source_doc_id, g.char_start, g.char_end, t.char_start AS starts,
         t.char_end AS ends
  FROM planted_ground_truth g JOIN {tokenized_docs} t ON t.doc_id = g.root_doc_id),
rows AS (
  SELECT v.doc_id AS root_doc_id, v.chunk_doc_id, v.rank, v.verified, v.mode, v.origin,
         s.char_start AS span, s.source_doc_id
  FROM verified_dependencies v LEFT JOIN spans s
    ON s.root_doc_id = v.doc_id AND s.ends[v.position + 1] > s.char_start
   AND s.starts[v.position + 1] < s.char_end),  -- the anchor token overlaps the span
kept AS (
  SELECT 'verified' AS rule, * FROM rows WHERE verified AND mode = 'on'
  UNION ALL
  -- retrieval's own rows only: span rows (origin 'span') exist only after verification
  SELECT 'top1_unverified', * FROM rows WHERE rank = 1 AND origin = 'anchor'),
rules AS (SELECT * FROM (VALUES ('verified'), ('top1_unverified')) r(rule)),
span_level AS (
  SELECT r.rule, 'span' AS level,
         (SELECT count(*) FROM planted_ground_truth) AS truth,
         count(k.span) AS kept,
         count(k.span) FILTER (WHERE k.chunk_doc_id = k.source_doc_id) AS true_kept,
         count(DISTINCT (k.root_doc_id, k.span))
           FILTER (WHERE k.chunk_doc_id = k.source_doc_id) AS truth_found
  FROM rules r LEFT JOIN kept k USING (rule) GROUP BY r.rule),
pairs AS (SELECT DISTINCT rule, root_doc_id, chunk_doc_id FROM kept
          WHERE root_doc_id IN (SELECT root_doc_id FROM truth)),
pair_level AS (
  SELECT r.rule, 'pair' AS level, (SELECT count(*) FROM truth) AS truth,
         count(p.root_doc_id) AS kept, count(t.root_doc_id) AS true_kept,
         count(t.root_doc_id) AS truth_found
  FROM rules r LEFT JOIN pairs p USING (rule)
  LEFT JOIN truth t ON t.root_doc_id = p.root_doc_id AND t.source_doc_id = p.chunk_doc_id
  GROUP BY r.rule)
SELECT rule, level, truth, kept, true_kept, truth_found,
       true_kept / nullif(kept, 0) AS precision, truth_found / nullif(truth, 0) AS recall
FROM (SELECT * FROM span_level UNION ALL SELECT * FROM pair_level)
ORDER BY level DESC, rule DESC;
