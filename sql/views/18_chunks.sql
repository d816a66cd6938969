-- Pool chunks (token ids left out).
CREATE OR REPLACE VIEW chunks AS
SELECT * EXCLUDE (filename, input_ids) FROM {chunks};
