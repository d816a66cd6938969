-- Quarantined rows counted by corpus and reason.
CREATE OR REPLACE VIEW quarantine_reasons AS
SELECT corpus, reason, count(*) AS rows
FROM quarantine
GROUP BY corpus, reason
ORDER BY corpus, rows DESC, reason;
