SELECT * FROM anchor_stats;
