-- Persisted state of stateful rules, one row per (rule, group key). A process writes only the
-- keys it changed, and a starting process restores the union of a rule's rows, oldest first
-- (that order is the eviction order). `rule_state` keeps the rule-wide counters
-- (`{"evictions": n}`); a row there that still holds `keys` was written by an earlier version
-- and is moved into this table by the first process that restores the rule.
CREATE TABLE rule_state_keys (
    rule       TEXT NOT NULL,
    key        TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (json_valid(state)),
    updated_at TEXT NOT NULL,
    PRIMARY KEY (rule, key)
);

-- A restore reads a rule's keys oldest first.
CREATE INDEX rule_state_keys_rule_updated_at ON rule_state_keys (rule, updated_at);
