//! The audit store's URL, safe to show: [`redact`] replaces its secrets — the password of the
//! user information (`postgres://user:secret@host/db`) and sensitive query parameters
//! (`?password=secret`, which the PostgreSQL driver accepts too, `sslpassword`...) — with
//! `***`. Every log line, error and HTTP response naming the store goes through it, so the
//! store's errors ([`super::Error`]) and `/readyz` only ever carry the redacted form.
//!
//! [`postgres_options`] parses the URL for the driver, first removing secret parameters the
//! driver does not know: it would log them, value included, as "unrecognized".

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use url::Url;

/// What a secret is replaced with.
const MASK: &str = "***";

/// The one secret query parameter the PostgreSQL driver uses (libpq's name, which sqlx
/// accepts); other secret parameters are removed before the driver sees them.
const DRIVER_PASSWORD_PARAM: &str = "password";

/// Whether a query parameter holds a secret: libpq's `password` and `sslpassword`, and, to be
/// safe with other drivers' spellings, any name containing `password`, `passwd`, `secret` or
/// `token` (in any case).
fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "passwd", "secret", "token"]
        .iter()
        .any(|word| name.contains(word))
}

/// `url` with its secrets replaced by `***`: the user-information password and the value of
/// every secret query parameter. A URL without secrets is returned unchanged. A string the URL
/// parser rejects (a bad port, say) loses everything before the last `@` of what follows the
/// scheme, and its whole query: it cannot be taken apart reliably, so nothing that might be a
/// secret is kept.
pub fn redact(url: &str) -> String {
    let Ok(mut parsed) = Url::parse(url) else {
        return redact_unparsed(url);
    };
    let mut changed = false;
    if parsed.password().is_some() {
        changed = parsed.set_password(Some(MASK)).is_ok();
        if !changed {
            return redact_unparsed(url);
        }
    }
    if parsed.query_pairs().any(|(name, _)| is_secret_param(&name)) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(name, value)| {
                let value = if is_secret_param(&name) {
                    MASK.to_owned()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), value)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
        changed = true;
    }
    if changed {
        parsed.to_string()
    } else {
        url.to_owned()
    }
}

/// The conservative redaction of a string that does not parse as a URL.
fn redact_unparsed(text: &str) -> String {
    let (head, query) = match text.split_once('?') {
        Some((head, _)) => (head, Some(MASK)),
        None => (text, None),
    };
    let start = head.find("://").map_or(0, |i| i + 3);
    let end = head[start..]
        .find('/')
        .map_or(head.len(), |slash| start + slash);
    let shown = match head[start..end].rfind('@') {
        Some(at) => format!("{}{MASK}{}", &head[..start], &head[start + at..]),
        None => head.to_owned(),
    };
    match query {
        Some(mask) => format!("{shown}?{mask}"),
        None => shown,
    }
}

/// The driver's options for a `postgres://` URL. Secret query parameters other than
/// `password` are removed first (with a warning naming the parameter, not its value): the
/// driver does not use them and would log their value while ignoring them.
pub(crate) fn postgres_options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    let Ok(mut parsed) = Url::parse(url) else {
        // The driver reports the parse error (it does not quote the URL).
        return PgConnectOptions::from_str(url);
    };
    let unused = |name: &str| is_secret_param(name) && name != DRIVER_PASSWORD_PARAM;
    if !parsed.query_pairs().any(|(name, _)| unused(&name)) {
        return PgConnectOptions::from_str(url);
    }
    let mut kept = Vec::new();
    for (name, value) in parsed.query_pairs() {
        if unused(&name) {
            tracing::warn!(
                parameter = %name,
                store = %redact(url),
                "ignoring a secret parameter of store.url that the PostgreSQL driver does not \
                 support; remove it from the URL"
            );
        } else {
            kept.push((name.into_owned(), value.into_owned()));
        }
    }
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    PgConnectOptions::from_str(parsed.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_information_password_is_masked() {
        assert_eq!(
            redact("postgres://reflex:s3cret@db:5432/reflex"),
            "postgres://reflex:***@db:5432/reflex"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1:1/reflex"),
            "postgres://postgres@127.0.0.1:1/reflex"
        );
        assert_eq!(redact("sqlite://reflex.db"), "sqlite://reflex.db");
        assert_eq!(redact("sqlite::memory:"), "sqlite::memory:");
    }

    #[test]
    fn secret_query_parameters_are_masked_and_the_others_kept() {
        let shown = redact(
            "postgres://u@h/db?sslmode=disable&password=s3cret&sslpassword=k3y&PGPASSWORD=x9",
        );
        assert_eq!(
            shown,
            "postgres://u@h/db?sslmode=disable&password=***&sslpassword=***&PGPASSWORD=***"
        );
        let both = redact("postgresql://u:one@h/db?password=two&application_name=reflex");
        assert_eq!(
            both,
            "postgresql://u:***@h/db?password=***&application_name=reflex"
        );
        // Percent-encoded names are secrets too.
        assert!(!redact("postgres://u@h/db?pass%77ord=s3cret").contains("s3cret"));
    }

    #[test]
    fn an_unparsable_url_loses_everything_that_might_be_a_secret() {
        let shown = redact("postgres://u:s3cret@h:99999/db?password=again");
        assert!(
            !shown.contains("s3cret") && !shown.contains("again"),
            "{shown}"
        );
        assert_eq!(shown, "postgres://***@h:99999/db?***");
        assert_eq!(redact("not a url"), "not a url");
    }

    mod props {
        use proptest::prelude::*;

        use super::super::redact;
        use crate::event::decode::arbitrary;

        proptest! {
            #![proptest_config(arbitrary::config())]

            /// Any text (a store URL from config or the environment) is redacted without a panic.
            #[test]
            fn any_text_is_redacted_without_panicking(text in any::<String>()) {
                let _ = redact(&text);
            }

            /// A password in the user information, in a query parameter or in both never
            /// survives, whether or not the rest of the URL parses (port 99999 does not).
            #[test]
            fn a_password_never_survives_redaction(
                secret in "Zq[A-Za-z0-9]{6,14}",
                user in "[a-z]{1,8}",
                host in "[a-z]{1,8}",
                port in prop::sample::select(vec!["", ":5432", ":99999"]),
                in_userinfo in any::<bool>(),
                param in prop::sample::select(vec!["", "password", "sslpassword", "PGPASSWORD"]),
            ) {
                let userinfo = if in_userinfo { format!("{user}:{secret}") } else { user };
                let query = if param.is_empty() { String::new() } else { format!("?{param}={secret}") };
                let url = format!("postgres://{userinfo}@{host}{port}/db{query}");
                let shown = redact(&url);
                prop_assert!(
                    !shown.contains(&secret) || (!in_userinfo && param.is_empty()),
                    "{url} -> {shown}"
                );
            }
        }
    }

    #[test]
    fn unsupported_secret_parameters_are_dropped_before_the_driver_parses() {
        let options =
            postgres_options("postgres://u@h:5/db?password=pw&sslpassword=k&sslmode=disable")
                .expect("valid");
        assert_eq!(options.get_port(), 5);
        assert_eq!(options.get_database(), Some("db"));
        assert!(postgres_options("postgres://u@h/db?sslpassword=k").is_ok());
    }
}
