//! `webhook`: an HTTP request to a URL whose scheme and host are fixed by the rule (or held,
//! whole, by a secret).

mod url;
mod validate;

pub use url::{UrlSpec, WebhookUrl};
pub use validate::StatusRange;
use validate::{check_header_name, check_header_value, check_secret};

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::freeform::{Compiled, FreeForm};
use super::{Param, all, duration, millis, opt_param, reject};
use crate::rules::diagnostic::Diagnostics;
use crate::rules::model::SpannedString;
use crate::rules::template::{RenderContext, RenderError};
use url::CompiledUrl;

/// Default per-attempt timeout.
const DEFAULT_TIMEOUT: chrono::Duration = chrono::Duration::seconds(10);

/// Longest per-attempt timeout: an executor slot is held for the whole request, and a receiver
/// that needs longer should acknowledge and work asynchronously.
const MAX_TIMEOUT: chrono::Duration = chrono::Duration::minutes(5);

/// Default number of retries after the first attempt.
const DEFAULT_RETRIES: u32 = 3;

/// Most retries allowed: with backoff, 10 retries already span minutes; more would hold events
/// (and Kafka offsets) hostage to a dead receiver.
const MAX_RETRIES: u32 = 10;

/// Default header carrying the HMAC signature.
const DEFAULT_HMAC_HEADER: &str = "X-Reflex-Signature";

/// HTTP method of a webhook.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// `GET` (no body).
    #[serde(alias = "get")]
    Get,
    /// `POST` (default).
    #[default]
    #[serde(alias = "post")]
    Post,
    /// `PUT`.
    #[serde(alias = "put")]
    Put,
    /// `PATCH`.
    #[serde(alias = "patch")]
    Patch,
    /// `DELETE`.
    #[serde(alias = "delete")]
    Delete,
}

/// Where a secret comes from. The secret itself never appears in rules, planned actions or
/// outcomes: only this reference does, and the executor resolves it when sending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecretRef {
    /// An environment variable of the Reflex process, e.g. `{env: PAGER_TOKEN}`.
    Env(String),
    /// A file (e.g. a mounted Kubernetes Secret), e.g. `{file: /etc/reflex/secrets/token}`;
    /// surrounding whitespace is trimmed.
    File(String),
}

/// HMAC-SHA256 signing of the request body.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HmacSpec {
    /// The signing key: `{env: NAME}` or `{file: path}`.
    #[schemars(with = "SecretRef")]
    pub secret: Spanned<SecretRef>,
    /// Header carrying `sha256=<hex>`. Default `X-Reflex-Signature`.
    #[schemars(with = "Option<String>")]
    pub header: Option<SpannedString>,
}

/// `webhook`: send an HTTP request.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// `GET`, `POST` (default), `PUT`, `PATCH` or `DELETE`.
    #[serde(default)]
    pub method: HttpMethod,
    /// Target URL: a template whose scheme and host are written literally (`https://host/`
    /// before any `{{`: event data may fill the path and query, never choose the server), or
    /// `{env: NAME}` / `{file: path}` when the URL itself is a credential (Slack-style incoming
    /// webhooks): read when sending, never recorded, its host checked against
    /// `actions.webhook_allowed_hosts`.
    #[schemars(with = "UrlSpec")]
    pub url: Spanned<UrlSpec>,
    /// Extra request headers; values are templates. Names are literal.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub headers: BTreeMap<String, SpannedString>,
    /// Headers whose values are secrets, e.g. `Authorization: {env: PAGER_AUTH}`. The value is
    /// read when sending and never recorded.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, SecretRef>")]
    pub secret_headers: BTreeMap<String, Spanned<SecretRef>>,
    /// JSON body as YAML; string leaves are templates (a leaf that is exactly `{{ expr }}` keeps
    /// its type). Sent as `application/json`.
    pub body: Option<FreeForm>,
    /// Text body (template), sent as `text/plain` unless `headers` set `Content-Type`.
    #[schemars(with = "Option<String>")]
    pub body_text: Option<SpannedString>,
    /// Per-attempt timeout. Default `10s`, at most `5m`.
    #[schemars(with = "Option<String>")]
    pub timeout: Option<SpannedString>,
    /// Retries after a failed attempt (connection error, timeout, 429 or 5xx), with backoff.
    /// Default 3, at most 10.
    #[schemars(with = "Option<u32>")]
    pub retries: Option<Spanned<u32>>,
    /// Statuses that count as success: codes (`204`), classes (`2xx`) or ranges (`200-299`).
    /// Default `[2xx]`.
    #[serde(default)]
    #[schemars(with = "Vec<super::IntOrString>")]
    pub success_status: Vec<SpannedString>,
    /// Sign the body with HMAC-SHA256.
    pub hmac: Option<HmacSpec>,
    /// The receiver drops repeats of a request by its `Idempotency-Key` header (always sent:
    /// the action's idempotency key). Then a call interrupted by a crash is sent again by the
    /// process that takes the action over, instead of being recorded `failed` because it may
    /// have taken effect. Default false.
    #[serde(default)]
    pub idempotent_receiver: bool,
}

/// A compiled webhook.
#[derive(Debug, Clone)]
pub struct Webhook {
    method: HttpMethod,
    url: CompiledUrl,
    headers: Vec<(String, Param)>,
    secret_headers: BTreeMap<String, SecretRef>,
    body: Option<Compiled>,
    body_text: Option<Param>,
    timeout: chrono::Duration,
    retries: u32,
    success_status: Vec<StatusRange>,
    hmac: Option<HmacParams>,
    idempotent_receiver: bool,
}

/// Rendered HMAC settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HmacParams {
    /// The signing key reference.
    pub secret: SecretRef,
    /// Header that carries `sha256=<hex of HMAC-SHA256(body)>`.
    pub header: String,
}

/// Rendered parameters of `webhook`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookAction {
    /// HTTP method.
    pub method: HttpMethod,
    /// Rendered URL, or the secret holding it.
    pub url: WebhookUrl,
    /// Rendered headers.
    pub headers: BTreeMap<String, String>,
    /// Secret-valued headers (references only).
    pub secret_headers: BTreeMap<String, SecretRef>,
    /// JSON body.
    pub body: Option<serde_json::Value>,
    /// Text body.
    pub body_text: Option<String>,
    /// Per-attempt timeout, milliseconds.
    pub timeout_ms: u64,
    /// Retries after the first attempt.
    pub retries: u32,
    /// Statuses that count as success.
    pub success_status: Vec<StatusRange>,
    /// Body signing.
    pub hmac: Option<HmacParams>,
    /// The receiver deduplicates on `Idempotency-Key`: safe to send again after a crash.
    /// Absent in parameters recorded before the field existed.
    #[serde(default)]
    pub idempotent_receiver: bool,
}

impl WebhookSpec {
    pub(crate) fn compile(&self, diags: &mut Diagnostics) -> Option<Webhook> {
        let mut ok = true;
        let url = CompiledUrl::compile(&self.url, diags);
        let mut headers = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for (name, value) in &self.headers {
            if let Err(reason) = check_header_name(name) {
                ok = reject(diags, value.referenced, reason, None);
            }
            names.push(name.to_ascii_lowercase());
            match super::param_checked(&format!("headers.{name}"), value, check_header_value, diags)
            {
                Some(p) => headers.push((name.clone(), p)),
                None => ok = false,
            }
        }
        let mut secret_headers = BTreeMap::new();
        for (name, secret) in &self.secret_headers {
            if let Err(reason) = check_header_name(name) {
                ok = reject(diags, secret.referenced, reason, None);
            }
            if names.contains(&name.to_ascii_lowercase()) {
                ok = reject(
                    diags,
                    secret.referenced,
                    format!("header `{name}` is set in both `headers` and `secret_headers`"),
                    None,
                );
            }
            names.push(name.to_ascii_lowercase());
            ok &= check_secret(secret, diags);
            secret_headers.insert(name.clone(), secret.value.clone());
        }
        if let (Some(_), Some(text)) = (&self.body, &self.body_text) {
            ok = reject(
                diags,
                text.referenced,
                "a webhook has either `body` (JSON) or `body_text`, not both".into(),
                None,
            );
        }
        if self.method == HttpMethod::Get {
            if let Some(body) = &self.body {
                ok = reject(
                    diags,
                    body.location(),
                    "a GET request has no body".into(),
                    Some("use `method: POST`".into()),
                );
            }
            if let Some(text) = &self.body_text {
                ok = reject(
                    diags,
                    text.referenced,
                    "a GET request has no body".into(),
                    Some("use `method: POST`".into()),
                );
            }
        }
        let body = match &self.body {
            Some(b) => Compiled::compile(b, "body", diags).map(Some),
            None => Some(None),
        };
        let body_text = opt_param("body_text", self.body_text.as_ref(), diags);
        let timeout = duration(
            "timeout",
            self.timeout.as_ref(),
            DEFAULT_TIMEOUT,
            MAX_TIMEOUT,
            diags,
        );
        let retries = match &self.retries {
            Some(r) if r.value > MAX_RETRIES => {
                ok = reject(
                    diags,
                    r.referenced,
                    format!("`retries` is at most {MAX_RETRIES}"),
                    None,
                );
                0
            }
            Some(r) => r.value,
            None => DEFAULT_RETRIES,
        };
        let mut success_status = Vec::new();
        for s in &self.success_status {
            match StatusRange::parse(&s.value) {
                Ok(r) => success_status.push(r),
                Err(reason) => {
                    ok = reject(
                        diags,
                        s.referenced,
                        format!("`success_status`: {reason}"),
                        Some("e.g. `[200, 202]`, `[2xx]` or `[200-299, 409]`".into()),
                    )
                }
            }
        }
        if success_status.is_empty() {
            success_status.push(StatusRange { from: 200, to: 299 });
        }
        let hmac = match &self.hmac {
            None => None,
            Some(h) => {
                ok &= check_secret(&h.secret, diags);
                let header = match &h.header {
                    Some(name) => {
                        if let Err(reason) = check_header_name(&name.value) {
                            ok = reject(diags, name.referenced, reason, None);
                        }
                        name.value.clone()
                    }
                    None => DEFAULT_HMAC_HEADER.to_owned(),
                };
                if names.contains(&header.to_ascii_lowercase()) {
                    ok = reject(
                        diags,
                        h.secret.referenced,
                        format!("the HMAC header `{header}` is also set in `headers`"),
                        None,
                    );
                }
                if self.body.is_none() && self.body_text.is_none() {
                    ok = reject(
                        diags,
                        h.secret.referenced,
                        "`hmac` signs the body, but the webhook has none".into(),
                        None,
                    );
                }
                Some(HmacParams {
                    secret: h.secret.value.clone(),
                    header,
                })
            }
        };
        all(&[ok])?;
        Some(Webhook {
            method: self.method,
            url: url?,
            headers,
            secret_headers,
            body: body?,
            body_text: body_text?,
            timeout: timeout?,
            retries,
            success_status,
            hmac,
            idempotent_receiver: self.idempotent_receiver,
        })
    }
}

impl Webhook {
    pub(crate) fn render(&self, ctx: &RenderContext) -> Result<WebhookAction, RenderError> {
        let url = self.url.render(ctx)?;
        let mut headers = BTreeMap::new();
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.render_checked(ctx, check_header_value)?);
        }
        Ok(WebhookAction {
            method: self.method,
            url,
            headers,
            secret_headers: self.secret_headers.clone(),
            body: match &self.body {
                Some(b) => Some(b.render(ctx)?),
                None => None,
            },
            body_text: match &self.body_text {
                Some(t) => Some(t.render(ctx)?),
                None => None,
            },
            timeout_ms: millis(self.timeout),
            retries: self.retries,
            success_status: self.success_status.clone(),
            hmac: self.hmac.clone(),
            idempotent_receiver: self.idempotent_receiver,
        })
    }
}
