//! Reflex's own template filters, on top of minijinja's built-ins.

use minijinja::{Environment, Error, ErrorKind};
use sha2::{Digest, Sha256};

/// Names of the filters added here (for hints).
pub(super) const CUSTOM: [&str; 2] = ["dns_label", "urlencode"];

/// Longest DNS label (RFC 1123), the limit on most Kubernetes names and on label values.
const DNS_LABEL_MAX: usize = 63;

/// Hex digits of the hash suffix [`dns_label`] appends when it has to shorten a name: 8 hex
/// digits (32 bits) keep names that differ only past the cut distinct in practice.
const HASH_LEN: usize = 8;

pub(super) fn register(env: &mut Environment<'static>) {
    env.add_filter("dns_label", dns_label);
    env.add_filter("urlencode", urlencode);
}

/// `{{ x | dns_label }}`: turns any string into a valid RFC 1123 DNS label (a valid Kubernetes
/// name): lowercased, every run of characters outside `[a-z0-9]` becomes one `-`, no `-` at
/// either end. A result longer than 63 characters is cut and suffixed with a hash of the whole
/// input, so distinct long inputs stay distinct. Fails on input with no letter or digit.
pub(super) fn dns_label(value: &str) -> Result<String, Error> {
    let mut out = String::with_capacity(value.len().min(DNS_LABEL_MAX));
    for c in value.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("dns_label: `{value}` has no letter or digit to make a name from"),
        ));
    }
    if out.len() > DNS_LABEL_MAX {
        let hash = hex::encode(Sha256::digest(value.as_bytes()));
        out.truncate(DNS_LABEL_MAX - HASH_LEN - 1);
        while out.ends_with('-') {
            out.pop();
        }
        out.push('-');
        out.push_str(&hash[..HASH_LEN]);
    }
    Ok(out)
}

/// `{{ x | urlencode }}`: percent-encodes every byte outside RFC 3986's unreserved set
/// (`A-Z a-z 0-9 - . _ ~`), for putting event values into URL paths and query strings.
pub(super) fn urlencode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
