//! Closed-loop remediation, the pure part: what a rule says "worked" means (`verify`), what it
//! does next when it did not (`escalate`), when it stops acting on a target (`loop_guard`) and
//! what it undoes (`undo`); and the state machine one remediation goes through. The pipeline
//! (`crate::pipeline`) persists that state and feeds it observations; `reflex test` feeds it
//! simulated ones.

pub mod object;
pub mod plan;
pub mod progress;
pub mod readiness;
pub mod spec;

pub use object::{describe_target, object_holds, object_of};
pub use plan::{KubeCheck, LoopGuard, Plan, Step, Undo, Verify};
pub use progress::{
    Effect, Ending, Observed, Progress, Stage, StepEnd, StepRef, remediation_id, step_key,
};

#[cfg(test)]
mod tests;
