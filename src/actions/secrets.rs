//! Resolving secret references (`{env: NAME}` / `{file: /path}`) into values that cannot be
//! printed by accident.
//!
//! Rules and planned actions only ever carry a [`SecretRef`]; executors resolve it right before
//! use, so a rotated token (a re-mounted Kubernetes Secret) is picked up without a restart and
//! the value never travels through the engine, outcomes or logs.

use std::fmt;
use std::io::Read;

use crate::rules::action::SecretRef;

/// Largest secret file read. Tokens and signing keys are bytes to a few KiB; a bigger file is a
/// wrong path (a directory dump, a binary), and reading it whole would waste memory per request.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Why a secret could not be resolved. Messages name the reference, never a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is not set (or not valid UTF-8).
    #[error(
        "secret environment variable `{0}` is not set (or not UTF-8); set it in the Reflex \
         deployment, e.g. from a Kubernetes Secret with `env[].valueFrom.secretKeyRef`"
    )]
    EnvMissing(String),
    /// The file cannot be read.
    #[error("secret file `{path}` cannot be read; is the Secret mounted there?")]
    FileUnreadable {
        /// The path from the rule.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_SECRET_FILE_BYTES`].
    #[error("secret file `{path}` is larger than {MAX_SECRET_FILE_BYTES} bytes; wrong path?")]
    FileTooLarge {
        /// The path from the rule.
        path: String,
    },
    /// The value is empty (after trimming whitespace), which is never a usable secret.
    #[error("secret {0} is empty")]
    Empty(String),
}

/// A resolved secret value. `Debug` and `Display` print `***`; the value is only reachable
/// through [`Secret::expose`], which makes every use visible in review.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value (e.g. one resolved by the caller).
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret value. Do not log it, format it or store it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Describes a reference for messages: `env NAME` or `file /path`.
pub fn describe(reference: &SecretRef) -> String {
    match reference {
        SecretRef::Env(name) => format!("env `{name}`"),
        SecretRef::File(path) => format!("file `{path}`"),
    }
}

/// Reads the secret a reference points to. Surrounding whitespace is trimmed (files written by
/// `echo` or `kubectl create secret --from-file` often end with a newline).
pub fn resolve(reference: &SecretRef) -> Result<Secret, SecretError> {
    let raw = match reference {
        SecretRef::Env(name) => {
            std::env::var(name).map_err(|_| SecretError::EnvMissing(name.clone()))?
        }
        SecretRef::File(path) => read_bounded(path)?,
    };
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(SecretError::Empty(describe(reference)));
    }
    Ok(Secret(trimmed.to_owned()))
}

fn read_bounded(path: &str) -> Result<String, SecretError> {
    let unreadable = |source| SecretError::FileUnreadable {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut text = String::new();
    // Read one byte past the limit to tell "exactly at the limit" from "too large".
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(unreadable)?;
    if text.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(SecretError::FileTooLarge {
            path: path.to_owned(),
        });
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_prints_as_stars_in_debug_and_display() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(format!("{secret}"), "***");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(***)");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn a_secret_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("token");
        std::fs::write(&path, "  s3cret-value\n").expect("write");
        let secret = resolve(&SecretRef::File(path.display().to_string())).expect("resolves");
        assert_eq!(secret.expose(), "s3cret-value");
    }

    #[test]
    fn a_missing_file_names_the_path_and_a_too_large_file_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("absent").display().to_string();
        let err = resolve(&SecretRef::File(missing.clone())).expect_err("missing");
        assert!(err.to_string().contains(&missing), "{err}");

        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; MAX_SECRET_FILE_BYTES as usize + 1]).expect("write");
        let err = resolve(&SecretRef::File(big.display().to_string())).expect_err("too large");
        assert!(matches!(err, SecretError::FileTooLarge { .. }), "{err}");
    }

    #[test]
    fn an_unset_variable_names_the_variable_and_an_empty_file_is_refused() {
        let err =
            resolve(&SecretRef::Env("REFLEX_TEST_SURELY_UNSET_7F3A".into())).expect_err("unset");
        assert!(err.to_string().contains("REFLEX_TEST_SURELY_UNSET_7F3A"));

        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("empty");
        std::fs::write(&path, "\n").expect("write");
        let err = resolve(&SecretRef::File(path.display().to_string())).expect_err("empty");
        assert!(matches!(err, SecretError::Empty(_)), "{err}");
    }
}
