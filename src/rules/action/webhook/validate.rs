//! Load-time and render-time checks of webhook parameters: URL, headers, secrets, statuses.

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::SecretRef;
use crate::rules::action::{no_control_chars, reject};
use crate::rules::diagnostic::Diagnostics;
use crate::rules::model::SpannedString;

/// Longest rendered URL. Many servers and proxies refuse URLs over 8 KiB.
const MAX_URL_LEN: usize = 8 * 1024;

/// Headers the HTTP client manages itself; setting them from a rule would break framing or
/// routing.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
];

/// An inclusive range of HTTP statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRange {
    /// Lowest status in the range.
    pub from: u16,
    /// Highest status in the range.
    pub to: u16,
}

impl StatusRange {
    /// Parses `204`, `2xx` or `200-299`.
    pub fn parse(s: &str) -> Result<StatusRange, String> {
        let s = s.trim();
        let status = |t: &str| -> Result<u16, String> {
            t.trim()
                .parse::<u16>()
                .ok()
                .filter(|n| (100..=599).contains(n))
                .ok_or_else(|| format!("`{}` is not an HTTP status (100-599)", t.trim()))
        };
        let range = if let Some(class) = s.strip_suffix("xx").or_else(|| s.strip_suffix("XX")) {
            let digit: u16 = class
                .parse()
                .ok()
                .filter(|d| (1..=5).contains(d))
                .ok_or_else(|| format!("`{s}` is not a status class (`1xx` to `5xx`)"))?;
            StatusRange {
                from: digit * 100,
                to: digit * 100 + 99,
            }
        } else if let Some((a, b)) = s.split_once('-') {
            StatusRange {
                from: status(a)?,
                to: status(b)?,
            }
        } else {
            let n = status(s)?;
            StatusRange { from: n, to: n }
        };
        if range.from > range.to {
            return Err(format!("`{s}`: the range is empty"));
        }
        Ok(range)
    }

    /// True when `status` is in the range.
    pub fn contains(&self, status: u16) -> bool {
        (self.from..=self.to).contains(&status)
    }
}

/// RFC 9110 token characters: what an HTTP header name may contain.
pub(super) fn check_header_name(name: &str) -> Result<(), String> {
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Err(format!("`{name}` is not a valid header name"));
    }
    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "`{name}` is managed by the HTTP client and cannot be set"
        ));
    }
    Ok(())
}

/// Header values: no control characters (a newline would start a new header).
pub(super) fn check_header_value(v: &str) -> Result<(), String> {
    no_control_chars(v)
}

pub(super) fn check_secret(secret: &Spanned<SecretRef>, diags: &mut Diagnostics) -> bool {
    match &secret.value {
        SecretRef::Env(name) => {
            let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return reject(
                    diags,
                    secret.referenced,
                    format!("`{name}` is not an environment variable name"),
                    None,
                );
            }
        }
        SecretRef::File(path) => {
            if !path.starts_with('/') {
                return reject(
                    diags,
                    secret.referenced,
                    format!("secret file `{path}` must be an absolute path"),
                    Some("e.g. `/etc/reflex/secrets/token` (a mounted Secret)".into()),
                );
            }
        }
    }
    true
}

/// Checks the literal start of a URL template and returns it (through the end of the host).
pub(super) fn check_url(src: &SpannedString, diags: &mut Diagnostics) -> Option<String> {
    let text = &src.value;
    let templated = ["{{", "{%", "{#"].iter().filter_map(|t| text.find(t)).min();
    let literal = &text[..templated.unwrap_or(text.len())];
    let hint_literal = "write the scheme and host literally, e.g. `https://hooks.example.com/alerts/{{ event.labels.team | urlencode }}`";
    let Some((scheme, rest)) = literal.split_once("://") else {
        diags.error(
            src.referenced,
            format!("webhook URL `{text}` must start with `http://` or `https://`"),
            Some(hint_literal.into()),
        );
        return None;
    };
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        diags.error(
            src.referenced,
            format!("webhook URL scheme `{scheme}` is not `http` or `https`"),
            None,
        );
        return None;
    }
    let host_end = rest.find(['/', '?', '#']);
    let authority = &rest[..host_end.unwrap_or(rest.len())];
    if templated.is_some() && host_end.is_none() {
        diags.error(
            src.referenced,
            "the host of a webhook URL must be literal: event data must not choose the server"
                .to_owned(),
            Some(hint_literal.into()),
        );
        return None;
    }
    if authority.contains('@') {
        diags.error(
            src.referenced,
            "credentials in a webhook URL would be recorded in outcomes".to_owned(),
            Some("use `secret_headers: {Authorization: {env: NAME}}`".into()),
        );
        return None;
    }
    // The last `:` starts the port unless it is inside an IPv6 literal (`[::1]`).
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority, None),
    };
    let host_ok = !host.is_empty()
        && (host.starts_with('[') && host.ends_with(']')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    if !host_ok || !port_ok {
        diags.error(
            src.referenced,
            format!("`{authority}` is not a valid host[:port] in webhook URL `{text}`"),
            None,
        );
        return None;
    }
    if templated.is_none()
        && let Err(reason) = check_rendered_url(text)
    {
        diags.error(
            src.referenced,
            format!("webhook URL `{text}` {reason}"),
            None,
        );
        return None;
    }
    Some(format!("{scheme}://{authority}"))
}

/// Checks a rendered URL: bounded, no whitespace or control characters (event data with a space
/// or newline must be `urlencode`d, not sent raw).
pub(super) fn check_rendered_url(url: &str) -> Result<(), String> {
    if url.len() > MAX_URL_LEN {
        return Err(format!("is longer than {MAX_URL_LEN} bytes"));
    }
    if let Some(c) = url.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "contains {c:?}; pass event values through the `urlencode` filter"
        ));
    }
    Ok(())
}
