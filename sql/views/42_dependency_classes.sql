-- Per corpus, rule, origin and class: what verification saw, passed and kept. origin
-- 'anchor' rows are retrieval candidates; 'span' rows are entities the span rule found in
-- a (document, chunk) pass that no anchor of the pair lies in. A copy (the chunk repeats
-- the anchor's context verbatim, or the anchor is in recurring text) passes the rule and is
-- kept only with `verification.copies: keep`. Means skip NULL (unscored) values.
CREATE OR REPLACE VIEW dependency_classes AS
SELECT corpus, rule, origin, dependency_class, copy_reason, count(*) AS rows,
       count(*) FILTER (WHERE passed) AS passed, count(*) FILTER (WHERE verified) AS kept,
       avg(gain) FILTER (WHERE passed AND NOT isnan(gain)) AS mean_gain_passed,
       avg(delta_i) FILTER (WHERE NOT isnan(delta_i)) AS mean_delta_i,
       count(DISTINCT (doc_id, chunk_doc_id)) FILTER (WHERE verified) AS kept_pairs
FROM verified_dependencies
GROUP BY ALL
ORDER BY corpus, rule, origin, dependency_class, copy_reason;
