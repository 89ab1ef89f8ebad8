//! Action parameter and group-key templates (minijinja), parsed once at load, rendered per event.
// CONTRACT (owned by the templates/actions helper), see the helper brief.
