-- Planted corpus: verified (root, chunk document) pairs against the ground truth
-- (root, source) pairs. precision = verified pairs that are true / verified pairs;
-- recall = true pairs found verified / true pairs.
CREATE OR REPLACE VIEW planted_dependency_quality AS
WITH truth AS (SELECT DISTINCT root_doc_id, source_doc_id FROM planted_ground_truth),
found AS (SELECT DISTINCT v.doc_id AS root_doc_id, v.chunk_doc_id AS source_doc_id, v.mode
          FROM verified_dependencies v
          WHERE v.verified AND v.doc_id IN (SELECT root_doc_id FROM truth))
SELECT any_value(f.mode) AS mode,
       (SELECT count(*) FROM truth) AS true_pairs,
       count(f.root_doc_id) AS verified_pairs,
       count(t.root_doc_id) AS true_verified_pairs,
       count(t.root_doc_id) / nullif(count(f.root_doc_id), 0) AS precision,
       count(t.root_doc_id) / nullif((SELECT count(*) FROM truth), 0) AS recall
FROM found f LEFT JOIN truth t USING (root_doc_id, source_doc_id);
