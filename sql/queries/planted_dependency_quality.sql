-- Planted ground truth: precision and recall of the kept (root, source) pairs, verified
-- against the "no verification" ablation.
SELECT rule, true_pairs, kept_pairs, true_kept_pairs, round(precision, 3) AS precision,
       round(recall, 3) AS recall
FROM planted_dependency_quality;
