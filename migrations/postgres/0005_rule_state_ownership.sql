-- One owner per (rule, group key): a key's row is locked for every decision on it, so its
-- state is no longer restored into each replica's memory (see docs/operations.md, "Several
-- replicas and rule state").
--   applied: per input partition (`topic/partition`), the offset of the last record applied
--            to the key; a redelivered record at or below it is not counted again.
--   due_ms:  the key's next deadline in Unix milliseconds (a `once_after` burst or an
--            `absence` to fire, a window to expire; for a row without state, when it may be
--            forgotten). Any replica's timer claims due rows (FOR UPDATE SKIP LOCKED).
ALTER TABLE rule_state_keys ADD COLUMN applied JSONB NOT NULL DEFAULT '{}';
ALTER TABLE rule_state_keys ADD COLUMN due_ms BIGINT;

-- Rows written by the previous version carry their deadline in the state document.
UPDATE rule_state_keys
   SET due_ms = (EXTRACT(EPOCH FROM (state->>'deadline')::timestamptz) * 1000)::bigint
 WHERE state->>'deadline' IS NOT NULL;

CREATE INDEX rule_state_keys_due_ms ON rule_state_keys (due_ms) WHERE due_ms IS NOT NULL;
