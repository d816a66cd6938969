SELECT corpus, count(*) AS docs, min(n_chars) AS min_chars, median(n_chars) AS median_chars, max(n_chars) AS max_chars FROM docs GROUP BY corpus ORDER BY corpus;
