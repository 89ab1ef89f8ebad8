//! `log`: record a rendered message (and fields) in the outcome; changes nothing. Useful to
//! watch what a rule would do, and to test the pipeline end to end.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Param;
use super::freeform::{Compiled, FreeForm};
use crate::rules::diagnostic::Diagnostics;
use crate::rules::model::SpannedString;
use crate::rules::template::{RenderContext, RenderError};

/// Severity the executor logs the message at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// `info` (default).
    #[default]
    Info,
    /// `warn`.
    Warn,
}

/// `log`: record a message.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogSpec {
    /// The message (template).
    #[schemars(with = "String")]
    pub message: SpannedString,
    /// `info` (default) or `warn`.
    #[serde(default)]
    pub level: LogLevel,
    /// Structured fields as YAML; string leaves are templates.
    pub fields: Option<FreeForm>,
}

/// A compiled log action.
#[derive(Debug, Clone)]
pub struct Log {
    message: Param,
    level: LogLevel,
    fields: Option<Compiled>,
}

/// Rendered parameters of `log`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogAction {
    /// The message.
    pub message: String,
    /// Severity.
    pub level: LogLevel,
    /// Structured fields.
    pub fields: Option<serde_json::Value>,
}

impl LogSpec {
    pub(crate) fn compile(&self, diags: &mut Diagnostics) -> Option<Log> {
        let message = Param::compile("message", &self.message, diags);
        let fields = match &self.fields {
            Some(f) => Compiled::compile(f, "fields", diags).map(Some),
            None => Some(None),
        };
        Some(Log {
            message: message?,
            level: self.level,
            fields: fields?,
        })
    }
}

impl Log {
    pub(crate) fn render(&self, ctx: &RenderContext) -> Result<LogAction, RenderError> {
        Ok(LogAction {
            message: self.message.render(ctx)?,
            level: self.level,
            fields: match &self.fields {
                Some(f) => Some(f.render(ctx)?),
                None => None,
            },
        })
    }
}
