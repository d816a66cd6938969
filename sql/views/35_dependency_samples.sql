-- Kept dependencies as text, to read what verification found: the root around the anchor
-- (the anchor token in [[ ]]), the start of the chunk that explains it, H -> H', dI, and for
-- planted corpora whether the chunk's document is the root's true source.
CREATE OR REPLACE VIEW dependency_samples AS
WITH kept AS (
  SELECT v.*, t.char_start[v.position + 1] AS a0, t.char_end[v.position + 1] AS a1
  FROM verified_dependencies v JOIN {tokenized_docs} t ON t.doc_id = v.doc_id
  WHERE v.verified)
SELECT k.doc_id, k.position, k.chunk_id, k.chunk_doc_id, round(k.h, 3) AS h,
       round(k.h_prime, 3) AS h_prime, round(k.delta_i, 3) AS delta_i,
       '...' || substr(d.text, greatest(k.a0 - 100, 0) + 1, least(k.a0, 100)) || '[['
         || substr(d.text, k.a0 + 1, k.a1 - k.a0) || ']]' || substr(d.text, k.a1 + 1, 40)
         || '...' AS root_context,
       substr(c.text, 1, 160) || '...' AS chunk_start,
       EXISTS (SELECT 1 FROM planted_ground_truth g WHERE g.root_doc_id = k.doc_id
               AND g.source_doc_id = k.chunk_doc_id) AS true_source
FROM kept k JOIN docs d ON d.doc_id = k.doc_id JOIN chunks c ON c.chunk_id = k.chunk_id;
