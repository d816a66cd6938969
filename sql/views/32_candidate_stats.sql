-- Per corpus: anchors with candidates, candidates, mean score, exclusions.
CREATE OR REPLACE VIEW candidate_stats AS
WITH per_anchor AS (
  SELECT corpus, doc_id, position, count(*) AS candidates, avg(score) AS mean_score,
         any_value(excluded_self) AS excluded_self,
         any_value(excluded_near_dup) AS excluded_near_dup
  FROM retrieval_candidates GROUP BY corpus, doc_id, position)
SELECT corpus, count(*) AS anchors_with_candidates, sum(candidates) AS candidates,
       avg(mean_score) AS mean_score, sum(excluded_self) AS excluded_self,
       sum(excluded_near_dup) AS excluded_near_dup
FROM per_anchor GROUP BY corpus ORDER BY corpus;
