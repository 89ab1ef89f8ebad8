//! How a stateful rule derives the group key of an event: its `key` template, rendered in the
//! key scope and bounded by [`MAX_KEY_LEN`].

use super::{MAX_KEY_LEN, StateError};
use crate::event::Event;
use crate::rules::diagnostic::Diagnostics;
use crate::rules::model::SpannedString;
use crate::rules::template::{RenderContext, Scope, Template};

/// How a rule derives group keys from events.
#[derive(Debug, Clone)]
pub(super) struct Keying {
    /// The `key` template; `None` means one key for the whole rule.
    template: Option<Template>,
    /// The rule's name, for the template context and error messages.
    pub(super) rule: String,
}

impl Keying {
    pub(super) fn compile(
        rule: &str,
        key: Option<&SpannedString>,
        diags: &mut Diagnostics,
    ) -> Option<Self> {
        let template = match key {
            Some(src) => Some(Template::compile(src, Scope::Key, diags)?),
            None => None,
        };
        Some(Self {
            template,
            rule: rule.to_owned(),
        })
    }

    /// The group key of `event`.
    pub(super) fn render(&self, event: &Event) -> Result<String, StateError> {
        let Some(template) = &self.template else {
            return Ok(String::new());
        };
        let ctx = RenderContext::new(event, &self.rule, None);
        let key = template.render(&ctx).map_err(|e| StateError::KeyRender {
            rule: self.rule.clone(),
            message: e.to_string(),
        })?;
        if key.len() > MAX_KEY_LEN {
            return Err(StateError::KeyTooLong {
                rule: self.rule.clone(),
                len: key.len(),
            });
        }
        Ok(key)
    }

    /// What templates see as `match.key`.
    pub(super) fn label(&self, key: &str) -> Option<String> {
        self.template.as_ref().map(|_| key.to_owned())
    }
}
