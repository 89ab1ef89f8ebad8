//! The text of the rules file: YAML-safe quoting and characters, and the check of each
//! converted rule by Reflex's own loader (a rule it refuses is set aside, commented out).

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::rules::{LoadError, load_sources};

/// A string as a YAML double-quoted scalar (JSON's escapes are YAML's).
pub(super) fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// One output line: a line break the rulebook put into a name or comment text becomes a space,
/// so it cannot end a `#` comment and start YAML of its own (quoted values never hold one).
pub(super) fn single_line(line: &str) -> String {
    line.replace(['\n', '\r'], " ")
}

/// The text with every character YAML does not allow in a stream (control characters other
/// than tab and newline, U+2028/U+2029, byte-order and non-characters) written as a `\u`
/// escape: inside a double-quoted value that is the same character, inside a comment plain text.
pub(super) fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bad = (c.is_control() && c != '\n' && c != '\t')
            || matches!(
                c,
                '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
            );
        if bad {
            let _ = write!(out, "\\u{:04X}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// The problems `reflex validate` finds in one converted rule, alone in a rules file.
pub(super) fn problems(rule: &str) -> Vec<String> {
    match load_sources(&[(PathBuf::from("converted.yaml"), format!("rules:\n{rule}"))]) {
        Ok(_) => Vec::new(),
        // The message and hint only: a line of the temporary file would mislead.
        Err(LoadError::Invalid(problems)) => problems
            .iter()
            .map(|p| match &p.hint {
                Some(hint) => format!("{} (hint: {hint})", p.message),
                None => p.message.clone(),
            })
            .collect(),
        Err(other) => vec![other.to_string()],
    }
}

/// A converted rule `reflex validate` refuses, kept commented out for the operator to fix.
pub(super) fn commented_out(rule: &str) -> String {
    let mut out = String::from(
        "  # TODO: not converted: this rule does not validate in Reflex (see the report); fix it or delete it.\n",
    );
    for line in rule.lines() {
        let _ = writeln!(out, "  # {}", line.strip_prefix("  ").unwrap_or(line));
    }
    out
}
