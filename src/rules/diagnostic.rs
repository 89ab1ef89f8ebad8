//! Located problems found while loading rules: `file:line:column`, rule name, message, hint.
//!
//! Loading never stops at the first problem: every compile step pushes into one [`Diagnostics`]
//! collector and the rule set is only built when it stays empty.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_saphyr::Location;

/// One problem in the rules directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file the problem is in.
    pub file: PathBuf,
    /// 1-based line; 0 when unknown.
    pub line: u64,
    /// 1-based column; 0 when unknown.
    pub column: u64,
    /// The rule it belongs to, when known.
    pub rule: Option<String>,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when we can tell.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if let Some(rule) = &self.rule {
            write!(f, "rule `{rule}`: ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Collects diagnostics for one load, remembering the current file and rule so compile steps
/// only pass a location.
#[derive(Debug, Default)]
pub struct Diagnostics {
    file: PathBuf,
    rule: Option<String>,
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Following problems belong to this file (and no rule yet).
    pub fn set_file(&mut self, file: &Path) {
        self.file = file.to_path_buf();
        self.rule = None;
    }

    /// Following problems belong to this rule.
    pub fn set_rule(&mut self, rule: Option<&str>) {
        self.rule = rule.map(str::to_owned);
    }

    /// Records a problem at `at`.
    pub fn error(&mut self, at: Location, message: impl Into<String>, hint: Option<String>) {
        self.error_at(at.line(), at.column(), message, hint);
    }

    /// Records a problem at `at`, `offset` characters into the scalar that starts there (used to
    /// point inside a JSONPath, regex or expression string).
    pub fn error_in(
        &mut self,
        at: Location,
        offset: usize,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.error_at(at.line(), at.column() + offset as u64, message, hint);
    }

    /// Records a problem at an explicit line and column.
    pub fn error_at(
        &mut self,
        line: u64,
        column: u64,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.items.push(Diagnostic {
            file: self.file.clone(),
            line,
            column,
            rule: self.rule.clone(),
            message: message.into(),
            hint,
        });
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Number of problems recorded.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The problems, in the order found.
    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.items
    }
}

/// The closest valid name to `got`, for "did you mean" hints.
pub fn closest<'a>(got: &str, valid: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    valid
        .into_iter()
        .map(|v| (strsim::damerau_levenshtein(got, v), v))
        .filter(|(d, v)| *d <= 3.max(v.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v)
}
