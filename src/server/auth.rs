//! Bearer-token authentication of the ingest endpoints (and, when configured, `/v1/rules`).

use std::path::{Path, PathBuf};

use axum::http::{HeaderMap, StatusCode, header};
use sha2::{Digest, Sha256};

use super::problem::ApiError;
use crate::config::IngestConfig;

/// Why a token or secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read {what} file {path} ({field}_file)")]
    Read {
        /// What the file holds (`the ingest token`).
        what: &'static str,
        /// The configuration field, without `_file` (`server.ingest.token`).
        field: &'static str,
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file or variable holds nothing but whitespace.
    #[error("{what} from {origin} is empty; put the {noun} in it")]
    Empty {
        /// What it holds (`the ingest token`).
        what: &'static str,
        /// `token` or `secret`.
        noun: &'static str,
        /// Where it came from.
        origin: String,
    },
    /// The named environment variable is not set.
    #[error("the environment variable {name} ({field}_env) is not set")]
    MissingEnv {
        /// The configuration field, without `_env`.
        field: &'static str,
        /// Its name.
        name: String,
    },
}

/// Where a token or secret is configured: a file (read first) or an environment variable, as
/// `server.ingest.token_file` / `token_env` and the webhook sources' `secret_file` /
/// `secret_env`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SecretSource<'a> {
    /// What it holds, for messages (`the ingest token`).
    pub what: &'static str,
    /// `token` or `secret`.
    pub noun: &'static str,
    /// The configuration field without `_file` / `_env` (`server.ingest.token`).
    pub field: &'static str,
    /// The `_file` setting.
    pub file: Option<&'a Path>,
    /// The `_env` setting.
    pub env: Option<&'a str>,
}

impl SecretSource<'_> {
    /// The text, surrounding whitespace (a file's final newline) trimmed; `None` when neither
    /// setting is given.
    pub(crate) fn read(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<String>, Error> {
        let (text, origin) = if let Some(path) = self.file {
            let text = read_file(path).map_err(|source| Error::Read {
                what: self.what,
                field: self.field,
                path: path.to_owned(),
                source,
            })?;
            (text, format!("file {}", path.display()))
        } else if let Some(name) = self.env {
            let text = env(name).ok_or_else(|| Error::MissingEnv {
                field: self.field,
                name: name.to_owned(),
            })?;
            (text, format!("environment variable {name}"))
        } else {
            return Ok(None);
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::Empty {
                what: self.what,
                noun: self.noun,
                origin,
            });
        }
        Ok(Some(text.to_owned()))
    }
}

/// Largest token or secret file read. A bearer token or webhook secret is tens of bytes; the bound keeps a wrong path
/// from being read whole into memory.
const MAX_TOKEN_BYTES: u64 = 4096;

/// A bearer token. Only its SHA-256 is kept: comparing fixed-length digests in constant time
/// reveals neither the token's bytes nor its length through timing.
#[derive(Clone)]
pub struct Token {
    digest: [u8; 32],
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// A token from its text (surrounding whitespace, such as a file's final newline, ignored).
    pub fn new(text: &str) -> Option<Self> {
        let text = text.trim();
        (!text.is_empty()).then(|| Self {
            digest: Sha256::digest(text.as_bytes()).into(),
        })
    }

    /// The token the configuration names: `token_file`, else `token_env`; `None` when neither
    /// is set.
    pub fn from_config(
        config: &IngestConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, Error> {
        let source = SecretSource {
            what: "the ingest token",
            noun: "token",
            field: "server.ingest.token",
            file: config.token_file.as_deref(),
            env: config.token_env.as_deref(),
        };
        Ok(source.read(env)?.as_deref().and_then(Self::new))
    }

    /// Whether `presented` is this token, in time independent of where they differ.
    pub(crate) fn matches(&self, presented: &str) -> bool {
        let other: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.digest
            .iter()
            .zip(other)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
    }

    /// Checks the request's `Authorization: Bearer <token>` header; the error is a 401 saying
    /// what was missing.
    pub fn verify(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let unauthorized = |error: &str| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                error,
                "send `Authorization: Bearer <token>` with the token Reflex reads from \
                 server.ingest.token_file or token_env (in Alertmanager: \
                 webhook_configs[].http_config.authorization.credentials_file)",
            )
        };
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(unauthorized("the request has no Authorization header"));
        };
        let presented = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(token)
            })
            .ok_or_else(|| unauthorized("the Authorization header is not `Bearer <token>`"))?;
        if self.matches(presented.trim()) {
            Ok(())
        } else {
            Err(unauthorized("the bearer token is not the configured one"))
        }
    }
}

/// A token or secret file's text, refusing one over [`MAX_TOKEN_BYTES`].
fn read_file(path: &Path) -> Result<String, std::io::Error> {
    let size = std::fs::metadata(path)?.len();
    if size > MAX_TOKEN_BYTES {
        return Err(std::io::Error::other(format!(
            "{size} bytes; a token file holds at most {MAX_TOKEN_BYTES}"
        )));
    }
    std::fs::read_to_string(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            authorization.parse().expect("valid header"),
        );
        headers
    }

    #[test]
    fn the_right_bearer_token_passes_and_others_get_401_saying_why() {
        let token = Token::new("s3cret\n").expect("non-empty");
        assert!(token.verify(&headers("Bearer s3cret")).is_ok());
        assert!(token.verify(&headers("bearer  s3cret")).is_ok());
        let wrong = token.verify(&headers("Bearer s3cret2")).expect_err("wrong");
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert!(wrong.error.contains("not the configured one"), "{wrong:?}");
        let basic = token.verify(&headers("Basic czNjcmV0")).expect_err("basic");
        assert!(basic.error.contains("Bearer <token>"), "{basic:?}");
        let none = token.verify(&HeaderMap::new()).expect_err("missing");
        assert!(none.error.contains("no Authorization header"), "{none:?}");
    }

    #[test]
    fn the_token_comes_from_the_file_before_the_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").expect("write");
        let config = IngestConfig {
            token_file: Some(file),
            token_env: Some("TOKEN".to_owned()),
            ..IngestConfig::default()
        };
        let token = Token::from_config(&config, |_| Some("from-env".to_owned()))
            .expect("readable")
            .expect("configured");
        assert!(token.matches("from-file"));
        let config = IngestConfig {
            token_env: Some("TOKEN".to_owned()),
            ..IngestConfig::default()
        };
        let err = Token::from_config(&config, |_| None).expect_err("unset variable");
        assert!(err.to_string().contains("TOKEN"), "{err}");
        let err = Token::from_config(&config, |_| Some("  ".to_owned())).expect_err("blank");
        assert!(err.to_string().contains("empty"), "{err}");
        assert!(
            Token::from_config(&IngestConfig::default(), |_| None)
                .expect("no token is not an error")
                .is_none()
        );
    }
}
