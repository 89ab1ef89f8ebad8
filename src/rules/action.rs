//! Action kinds and their typed parameter schemas; compiled actions render to planned parameters.
// CONTRACT (owned by the templates/actions helper), see the helper brief.
