//! Turning a planned webhook's parameters into a request once, before the first attempt:
//! resolve the URL (rendered, or read from a secret), check its host against the allow-list,
//! build the headers (idempotency key, secret headers, HMAC signature) and the body.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};

use super::{Error, HostAllowList, IDEMPOTENCY_HEADER, MAX_TIMEOUT, sign};
use crate::actions::secrets::{self, Secret};
use crate::rules::action::{HttpMethod, WebhookAction, WebhookUrl};

/// A request ready to be sent (possibly several times).
pub(super) struct Prepared {
    pub(super) method: Method,
    pub(super) url: Url,
    /// For messages and logs: method, scheme, host and path, without the query (which may
    /// carry event data nobody asked to see in an error); for a URL read from a secret, the
    /// path is `***` and the reference is named instead.
    pub(super) target: String,
    pub(super) headers: HeaderMap,
    pub(super) body: Option<Vec<u8>>,
    pub(super) timeout: Duration,
    /// Values to scrub from response excerpts.
    pub(super) secrets: Vec<Secret>,
}

/// Checks the destination, resolves secrets and builds headers and body once.
pub(super) fn prepare(
    allow: &HostAllowList,
    params: &WebhookAction,
    idempotency_key: &str,
) -> Result<Prepared, Error> {
    let mut secrets = Vec::new();
    let (url, from_secret) = match &params.url {
        WebhookUrl::Rendered(text) => (
            Url::parse(text).map_err(|e| Error::InvalidParams(format!("url `{text}`: {e}")))?,
            None,
        ),
        WebhookUrl::Secret(reference) => {
            let secret = secrets::resolve(reference)?;
            let described = secrets::describe(reference);
            // The parse error names what is wrong, never the text it parsed.
            let url = Url::parse(secret.expose()).map_err(|e| {
                Error::InvalidParams(format!("the url in secret {described} is invalid: {e}"))
            })?;
            // A receiver echoing its own URL or path must not put it into the outcome.
            if url.path().len() > 1 {
                secrets.push(Secret::new(url.path()));
            }
            secrets.push(secret);
            (url, Some(described))
        }
    };
    let shown = || match &from_secret {
        Some(described) => format!("the url in secret {described}"),
        None => format!("url `{}`", url.as_str()),
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::InvalidParams(format!(
            "{}: scheme `{}` is not http or https",
            shown(),
            url.scheme()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::InvalidParams(format!(
            "{}: credentials in the url are not sent; use `secret_headers`",
            shown()
        )));
    }
    let host = url
        .host_str()
        .ok_or_else(|| Error::InvalidParams(format!("{} has no host", shown())))?;
    if !allow.allows(host) {
        return Err(Error::HostNotAllowed {
            host: host.to_owned(),
            allowed: allow.describe(),
        });
    }
    let method = match params.method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Delete => Method::DELETE,
    };
    let origin = url.origin().ascii_serialization();
    let target = match &from_secret {
        Some(described) => format!("{method} {origin}/*** (url from {described})"),
        None => format!("{method} {origin}{}", url.path()),
    };

    let mut headers = HeaderMap::new();
    for (name, value) in &params.headers {
        let name = header_name(name)?;
        let value = HeaderValue::from_str(value).map_err(|_| {
            Error::InvalidParams(format!("header `{name}` has a value HTTP cannot carry"))
        })?;
        headers.insert(name, value);
    }
    let idempotency = header_name(IDEMPOTENCY_HEADER)?;
    if !headers.contains_key(&idempotency) {
        let value = HeaderValue::from_str(idempotency_key).map_err(|_| {
            Error::InvalidParams("the idempotency key is not a valid header value".into())
        })?;
        headers.insert(idempotency, value);
    }

    let body = match (&params.body, &params.body_text) {
        (Some(_), Some(_)) => {
            return Err(Error::InvalidParams(
                "both `body` and `body_text` are set".into(),
            ));
        }
        (Some(json), None) => {
            if !headers.contains_key(CONTENT_TYPE) {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            Some(serde_json::to_vec(json).map_err(|e| Error::InvalidParams(format!("body: {e}")))?)
        }
        (None, Some(text)) => {
            if !headers.contains_key(CONTENT_TYPE) {
                headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
            }
            Some(text.clone().into_bytes())
        }
        (None, None) => None,
    };

    // Secret headers last, so a missing one is reported only for a request that is otherwise
    // valid.
    for (name, reference) in &params.secret_headers {
        let name = header_name(name)?;
        let secret = secrets::resolve(reference)?;
        let mut value = HeaderValue::from_str(secret.expose()).map_err(|_| {
            Error::InvalidParams(format!(
                "secret {} for header `{name}` is not a valid header value",
                secrets::describe(reference)
            ))
        })?;
        // Keeps the value out of HTTP/2 header compression tables and `Debug` output.
        value.set_sensitive(true);
        headers.insert(name, value);
        secrets.push(secret);
    }
    if let Some(hmac) = &params.hmac {
        let key = secrets::resolve(&hmac.secret)?;
        let signed =
            sign::signature_header(key.expose().as_bytes(), body.as_deref().unwrap_or(&[]));
        let value = HeaderValue::from_str(&signed).map_err(|_| {
            Error::InvalidParams("the signature is not a valid header value".into())
        })?;
        headers.insert(header_name(&hmac.header)?, value);
        secrets.push(key);
    }
    Ok(Prepared {
        method,
        url,
        target,
        headers,
        body,
        timeout: Duration::from_millis(params.timeout_ms).min(MAX_TIMEOUT),
        secrets,
    })
}

fn header_name(name: &str) -> Result<HeaderName, Error> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| Error::InvalidParams(format!("`{name}` is not a valid header name")))
}
