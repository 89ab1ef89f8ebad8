-- Circuit breakers: one row per rule (target '') and per rule and object. A row whose
-- open_until is in the future is an open circuit; every replica and a restarted process read
-- the same rows. open_until stays after the circuit closes: executions are counted from it, so
-- a closed circuit starts a fresh window instead of re-opening on the executions that opened it.
CREATE TABLE circuits (
    rule            TEXT        NOT NULL,
    target          TEXT        NOT NULL DEFAULT '',
    opened_at       TIMESTAMPTZ NOT NULL,
    open_until      TIMESTAMPTZ NOT NULL,
    executions      INTEGER     NOT NULL,
    trips           INTEGER     NOT NULL DEFAULT 1,
    -- Whether the `opened` announcement went out (retried by the next check until it did).
    announced_open   BOOLEAN    NOT NULL DEFAULT FALSE,
    -- Whether the `closed` announcement went out (set by whoever first sees it expired).
    closed_announced BOOLEAN    NOT NULL DEFAULT FALSE,
    PRIMARY KEY (rule, target)
);

-- The circuit breaker counts a rule's executions on one object within a window.
CREATE INDEX outcomes_rule_target_started_at ON outcomes (rule, target, started_at);
