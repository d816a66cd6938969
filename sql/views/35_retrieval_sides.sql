-- Per root shard and retrieval mode: which side served each anchor's candidates (the lexical
-- side only, the dense side only, or both), candidates per side, and what the candidate
-- limits dropped (per_doc, near-copies of a better candidate, the root and its near-copies).
CREATE OR REPLACE VIEW retrieval_sides AS
WITH per_anchor AS (
  SELECT corpus, shard, mode, doc_id, position,
         bool_or(found_by <> 'dense') AS lexical, bool_or(found_by <> 'lexical') AS dense,
         count(*) AS candidates,
         count(*) FILTER (WHERE found_by = 'lexical') AS by_lexical,
         count(*) FILTER (WHERE found_by = 'dense') AS by_dense,
         count(*) FILTER (WHERE found_by = 'both') AS by_both,
         any_value(excluded_per_doc) AS excluded_per_doc,
         any_value(excluded_dup_candidate) AS excluded_dup_candidate,
         any_value(excluded_self) AS excluded_self,
         any_value(excluded_near_dup) AS excluded_near_dup
  FROM retrieval_candidates GROUP BY ALL)
SELECT corpus, shard, mode, count(*) AS anchors,
       avg(CASE WHEN lexical AND NOT dense THEN 1 ELSE 0 END) AS share_lexical_only,
       avg(CASE WHEN dense AND NOT lexical THEN 1 ELSE 0 END) AS share_dense_only,
       avg(CASE WHEN lexical AND dense THEN 1 ELSE 0 END) AS share_both,
       sum(candidates) AS candidates, sum(by_lexical) AS candidates_lexical,
       sum(by_dense) AS candidates_dense, sum(by_both) AS candidates_both,
       sum(excluded_per_doc) AS excluded_per_doc,
       sum(excluded_dup_candidate) AS excluded_dup_candidate,
       sum(excluded_self) AS excluded_self, sum(excluded_near_dup) AS excluded_near_dup
FROM per_anchor GROUP BY corpus, shard, mode ORDER BY corpus, shard, mode;
