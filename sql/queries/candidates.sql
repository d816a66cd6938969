SELECT * FROM candidate_stats;
