-- One owner per (rule, group key): a key's row is read for every decision on it, so its
-- state is no longer restored into memory (see docs/operations.md, "Several replicas and rule
-- state").
--   applied: per input partition (`topic/partition`), the offset of the last record applied
--            to the key; a redelivered record at or below it is not counted again.
--   due_ms:  the key's next deadline in Unix milliseconds (a burst or absence to fire, a
--            window to expire; for a row without state, when it may be forgotten).
ALTER TABLE rule_state_keys ADD COLUMN applied TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(applied));
ALTER TABLE rule_state_keys ADD COLUMN due_ms INTEGER;

-- Rows written by the previous version carry their deadline in the state document.
UPDATE rule_state_keys
   SET due_ms = CAST(ROUND((julianday(json_extract(state, '$.deadline')) - 2440587.5) * 86400000) AS INTEGER)
 WHERE json_extract(state, '$.deadline') IS NOT NULL;

CREATE INDEX rule_state_keys_due_ms ON rule_state_keys (due_ms) WHERE due_ms IS NOT NULL;
