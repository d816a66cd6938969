-- Planted corpus: each ground-truth span with the anchors that fall inside it and whether the
-- true source document is among those anchors' candidates.
CREATE OR REPLACE VIEW planted_anchor_recall AS
WITH spans AS (
  SELECT g.*, t.char_start AS starts, t.char_end AS ends
  FROM planted_ground_truth g JOIN {tokenized_docs} t ON t.doc_id = g.root_doc_id),
hits AS (
  SELECT s.root_doc_id, s.source_doc_id, s.kind, s.surface, s.char_start, a.position
  FROM spans s JOIN anchors a ON a.doc_id = s.root_doc_id
  WHERE s.ends[a.position + 1] > s.char_start AND s.starts[a.position + 1] < s.char_end)
SELECT h.root_doc_id, h.kind, h.surface, count(DISTINCT h.position) AS anchors,
       bool_or(c.chunk_doc_id = h.source_doc_id) AS source_retrieved
FROM hits h LEFT JOIN retrieval_candidates c
  ON c.doc_id = h.root_doc_id AND c.position = h.position
GROUP BY h.root_doc_id, h.kind, h.surface;
