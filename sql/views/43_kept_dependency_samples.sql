-- Kept dependencies to read: the root's text around the judged span (the span in **bold**),
-- the start of the chunk, H -> H', dI, nats gained, class, and for planted corpora whether
-- the chunk comes from the root's true source (NULL for roots without ground truth).
-- The strongest first; `WHERE per_root <= 2` gives a sample of every root.
CREATE OR REPLACE VIEW kept_dependency_samples AS
WITH spans AS (
  SELECT v.*, t.char_start[v.span_start + 1] AS s0, t.char_end[v.span_end] AS c1
  FROM verified_dependencies v JOIN {tokenized_docs} t ON t.doc_id = v.doc_id
  WHERE v.verified),
kept AS (  -- the span starts after the leading space its first token carries
  SELECT s.*, s.s0 + length(substring(d.text, s.s0 + 1, s.c1 - s.s0))
              - length(ltrim(substring(d.text, s.s0 + 1, s.c1 - s.s0))) AS c0
  FROM spans s JOIN docs d ON d.doc_id = s.doc_id),
truth AS (SELECT DISTINCT root_doc_id, source_doc_id FROM planted_ground_truth),
roots AS (SELECT DISTINCT root_doc_id FROM planted_ground_truth)
SELECT k.corpus, k.doc_id, k.position, k.chunk_doc_id, k.chunk_id, k.rule, k.origin,
       replace('…' || substring(d.text, greatest(k.c0 - 60, 0) + 1, k.c0 - greatest(k.c0 - 60, 0))
               || '**' || substring(d.text, k.c0 + 1, k.c1 - k.c0) || '**'
               || substring(d.text, k.c1 + 1, 60) || '…', chr(10), ' ') AS root_context,
       replace(substring(c.text, 1, 80), chr(10), ' ') || '…' AS chunk_start,
       round(k.h::DOUBLE, 2) || ' -> ' || round(k.h_prime::DOUBLE, 2) AS h_to_h_prime,
       round(k.delta_i::DOUBLE, 2) AS delta_i, round(k.gain::DOUBLE, 2) AS gain_nats,
       k.dependency_class,
       CASE WHEN r.root_doc_id IS NULL THEN NULL ELSE tr.root_doc_id IS NOT NULL END
         AS true_source,
       row_number() OVER (PARTITION BY k.doc_id ORDER BY k.gain DESC NULLS LAST, k.position)
         AS per_root
FROM kept k
JOIN docs d ON d.doc_id = k.doc_id
LEFT JOIN {chunks} c ON c.chunk_id = k.chunk_id
LEFT JOIN roots r ON r.root_doc_id = k.doc_id
LEFT JOIN truth tr ON tr.root_doc_id = k.doc_id AND tr.source_doc_id = k.chunk_doc_id
ORDER BY k.gain DESC NULLS LAST, k.doc_id, k.position;
