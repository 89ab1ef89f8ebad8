-- The audit trail: one row per action Reflex decided to carry out, keyed by its idempotency key
-- so a redelivered event finds the earlier attempt instead of acting twice.
CREATE TABLE outcomes (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT    NOT NULL,
    rule            TEXT    NOT NULL,
    action_kind     TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL UNIQUE,
    status          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    started_at      TEXT    NOT NULL,
    finished_at     TEXT,
    target          TEXT,
    error           TEXT,
    details         TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(details))
);

-- `reflex history` lists a rule's recent outcomes, and looks outcomes up by event.
CREATE INDEX outcomes_rule_started_at ON outcomes (rule, started_at);
CREATE INDEX outcomes_event_id ON outcomes (event_id);

-- Persisted state of stateful rules (throttle, threshold, correlate windows), one JSON document
-- per rule, so a restart does not forget open windows.
CREATE TABLE rule_state (
    rule       TEXT PRIMARY KEY,
    state      TEXT NOT NULL CHECK (json_valid(state)),
    updated_at TEXT NOT NULL
);
