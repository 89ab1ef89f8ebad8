//! Conditions: paths into the event, the one-line expression language, the compiled tree.
// CONTRACT (owned by the conditions helper), see the helper brief.
