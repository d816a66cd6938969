-- Planted ground truth: precision and recall of what verification keeps, against the
-- "no verification" ablation, at planted spans and per (root, source) pair.
SELECT level, rule, truth, kept, true_kept, truth_found, round(precision, 3) AS precision,
       round(recall, 3) AS recall
FROM planted_dependency_quality;
