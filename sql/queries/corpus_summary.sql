SELECT * FROM corpus_summary;
