-- Packed datasets: the EntropyLong data and the plain-concatenation baseline.
SELECT * FROM packing_stats;
