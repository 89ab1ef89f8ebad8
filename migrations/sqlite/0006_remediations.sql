-- Closed-loop remediation (issue #13): what each firing of a remediating rule did and is still
-- waiting for, persisted so a restart or another replica finishes it. Every timestamp here is
-- Unix milliseconds (INTEGER), so both databases compare them alike.
CREATE TABLE remediations (
    -- Derived from (event id, rule): a redelivered event finds its remediation instead of
    -- starting a second one.
    id             TEXT   PRIMARY KEY,
    rule           TEXT   NOT NULL,
    -- The object acted on (`namespace/kind/name`); NULL for a rule without a Kubernetes target.
    -- At most one open remediation per (rule, target): see remediations_open_target.
    target         TEXT,
    -- The triggering alert occurrence (`fingerprint/startsAt`): its resolution wakes this row.
    occurrence     TEXT,
    -- The rule's group key, for refires of rules that have no target.
    group_key      TEXT,
    -- acting | verifying | undoing | done. acting and verifying are "open": they hold the
    -- target. undoing waits to revert a temporary fix; done is history.
    phase          TEXT   NOT NULL,
    -- The pure state machine's document (steps, verification, undo plans), opaque to the store.
    doc            TEXT   NOT NULL CHECK (json_valid(doc)),
    -- When the sweep is to look at the row next (a verification deadline, an undo TTL, or now
    -- after a signal); NULL: nothing is due until a signal arrives.
    due_ms         INTEGER,
    -- The latest time the rule fired again on the same target (or group key) while this was
    -- open: a `no_refire` verification fails on it.
    refired_ms     INTEGER,
    -- created_ms counts remediations for the loop guard; updated_ms dates the row for retention.
    created_ms     INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL,
    -- The replica following the row up, and until when: the sweep claims due rows with a free or
    -- expired lease, and saves are fenced on lease_owner, so a replica killed mid-way loses the
    -- row to a survivor and its late save is refused.
    lease_owner    TEXT,
    lease_until_ms INTEGER
);

-- One open remediation per (rule, target): a second firing meanwhile is a refire of it.
CREATE UNIQUE INDEX remediations_open_target ON remediations (rule, target)
    WHERE target IS NOT NULL AND phase IN ('acting', 'verifying');
-- Refires of rules without a target find their open remediation by group key.
CREATE INDEX remediations_open_group_key ON remediations (rule, group_key)
    WHERE group_key IS NOT NULL AND phase IN ('acting', 'verifying');
-- The sweep reads due rows, earliest first.
CREATE INDEX remediations_due_ms ON remediations (due_ms) WHERE due_ms IS NOT NULL;
-- A resolved alert wakes the remediations of its occurrence.
CREATE INDEX remediations_occurrence ON remediations (occurrence);
-- The loop guard counts a rule's remediations on one target within a window; history lists them.
CREATE INDEX remediations_rule_target_created_ms ON remediations (rule, target, created_ms);

-- Alert occurrences seen resolved, kept apart from remediations because the resolution may
-- arrive before the remediation row exists (another partition, another replica). resolved_ms
-- is the first resolution seen; a later duplicate does not move it.
CREATE TABLE alert_resolutions (
    occurrence  TEXT   PRIMARY KEY,
    resolved_ms INTEGER NOT NULL
);

-- Targets a rule stopped acting on (loop guard), one row per (rule, target), re-opened in place
-- so the last release stays readable until the next quarantine. Active: not released and
-- until_ms in the future.
CREATE TABLE quarantines (
    rule           TEXT    NOT NULL,
    target         TEXT    NOT NULL,
    since_ms       INTEGER NOT NULL,
    -- When it expires on its own (the rule's `loop_guard.quarantine` after since_ms).
    until_ms       INTEGER NOT NULL,
    -- Why, for operators (`reflex history`, the outcome, the notification).
    reason         TEXT    NOT NULL,
    -- The remediation whose recurrence tripped the guard.
    remediation_id TEXT,
    -- Set by `reflex release` / POST /v1/quarantines/release: the loop guard counts only
    -- remediations created after the last release.
    released_ms    INTEGER,
    released_by    TEXT,
    -- Whether the `quarantined` announcement went out (retried until it did); 0 or 1.
    announced      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (rule, target)
);

-- `reflex release TARGET` releases a target's quarantines of every rule.
CREATE INDEX quarantines_target ON quarantines (target);
