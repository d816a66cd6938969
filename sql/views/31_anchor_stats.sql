-- Per corpus: anchors, documents with anchors, anchors per scored document, mean entropy.
CREATE OR REPLACE VIEW anchor_stats AS
SELECT p.corpus, count(DISTINCT p.doc_id) AS docs, count(a.position) AS anchors,
       count(DISTINCT a.doc_id) AS docs_with_anchors,
       count(a.position) / greatest(count(DISTINCT p.doc_id), 1) AS anchors_per_doc,
       avg(a.entropy) AS mean_anchor_entropy
FROM entropy_profiles p LEFT JOIN anchors a ON a.doc_id = p.doc_id
GROUP BY p.corpus
ORDER BY p.corpus;
