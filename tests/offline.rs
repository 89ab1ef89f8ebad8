//! Offline tier: tests that need nothing running. A plain `cargo test` runs them (with the unit
//! and property tests in src/): the rule commands as a user runs them, the rule engine on data
//! fixtures, and the webhook executor against real HTTP servers it starts itself.
//!
//! Run: `cargo test --test offline`

/// Shared fixtures (tests/support/), `pub` because each tier uses a different part of them.
pub mod support;

mod offline {
    mod actions_webhook;
    mod chart_readme;
    mod cli_backtest;
    mod cli_closed_loop;
    mod cli_rules;
    mod cli_surface;
    mod closed_loop_rule_tests;
    mod eda_import;
    mod log_lines;
    mod release_metadata;
    mod rules_engine;
}
