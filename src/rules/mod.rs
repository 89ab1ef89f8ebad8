//! The pure rule engine: YAML model, loading with located diagnostics, compiled rule set,
//! conditions, stateful windows, templates and planned actions. No I/O dependencies here
//! beyond reading the rule files themselves in [`load`].

pub mod action;
pub mod compile;
pub mod condition;
pub mod diagnostic;
pub mod duration;
pub mod engine;
pub mod load;
pub mod model;
pub mod remediation;
pub mod ruleset;
pub mod state;
pub mod template;

pub use diagnostic::Diagnostic;
pub use engine::{
    Engine, EngineState, Evaluation, PlannedAction, RuleFailure, StateKey, Throttled,
};
pub use load::{LoadError, load_dir, load_sources};
pub use ruleset::{Rule, RuleSet};
pub mod testing;
