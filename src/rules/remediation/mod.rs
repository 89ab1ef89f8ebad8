//! Closed-loop remediation, the pure part: what a rule says "worked" means (`verify`), what it
//! does next when it did not (`escalate`), when it stops acting on a target (`loop_guard`) and
//! what it undoes (`undo`); and the state machine one remediation goes through. The pipeline
//! (`crate::pipeline`) persists that state and feeds it observations; `reflex test` feeds it
//! simulated ones.

pub mod readiness;
