//! A webhook's `url`: a template whose scheme and host are literal, or a secret reference
//! (`{env: NAME}` / `{file: /path}`) holding the whole URL, for receivers whose URL is itself
//! the credential (Slack-style incoming webhooks, `https://hooks.example/services/T0/B0/XXXX`).

use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Deserializer, Serialize};
use serde_saphyr::Spanned;

use super::SecretRef;
use super::validate::{check_rendered_url, check_secret, check_url};
use crate::rules::action::Param;
use crate::rules::diagnostic::Diagnostics;
use crate::rules::model::SpannedString;
use crate::rules::template::{RenderContext, RenderError};

/// `url` as written in a rule.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[schemars(untagged)]
pub enum UrlSpec {
    /// A template. The scheme and host must be written literally (`https://host/` before any
    /// `{{`): event data may fill the path and query, never choose the server.
    Template(String),
    /// The whole URL comes from a secret and is never recorded; its host is checked against
    /// `actions.webhook_allowed_hosts` when sending.
    Secret(SecretRef),
}

impl<'de> Deserialize<'de> for UrlSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // By hand rather than `#[serde(untagged)]`, whose error ("did not match any variant")
        // would not say what is valid.
        struct UrlVisitor;

        impl<'de> Visitor<'de> for UrlVisitor {
            type Value = UrlSpec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a URL (template) or a secret `{env: NAME}` / `{file: /path}`")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<UrlSpec, E> {
                Ok(UrlSpec::Template(v.to_owned()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<UrlSpec, A::Error> {
                SecretRef::deserialize(MapAccessDeserializer::new(map)).map(UrlSpec::Secret)
            }
        }

        deserializer.deserialize_any(UrlVisitor)
    }
}

/// The rendered `url` of a planned webhook: the URL itself, or the reference the executor
/// resolves when sending (so the secret never reaches outcomes, targets or logs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WebhookUrl {
    /// The rendered URL.
    Rendered(String),
    /// A secret holding the URL.
    Secret(SecretRef),
}

impl From<String> for WebhookUrl {
    fn from(url: String) -> Self {
        WebhookUrl::Rendered(url)
    }
}

/// A compiled `url`.
#[derive(Debug, Clone)]
pub(super) enum CompiledUrl {
    Template {
        template: Param,
        /// The literal start of the URL through the end of the host; every rendering starts
        /// with it.
        prefix: String,
    },
    Secret(SecretRef),
}

impl CompiledUrl {
    pub(super) fn compile(src: &Spanned<UrlSpec>, diags: &mut Diagnostics) -> Option<CompiledUrl> {
        match &src.value {
            UrlSpec::Template(text) => {
                let located = SpannedString::new(text.clone(), src.referenced, src.defined);
                let prefix = check_url(&located, diags);
                let template = Param::compile("url", &located, diags);
                Some(CompiledUrl::Template {
                    template: template?,
                    prefix: prefix?,
                })
            }
            UrlSpec::Secret(reference) => {
                let located = Spanned::new(reference.clone(), src.referenced, src.defined);
                check_secret(&located, diags).then(|| CompiledUrl::Secret(reference.clone()))
            }
        }
    }

    pub(super) fn render(&self, ctx: &RenderContext) -> Result<WebhookUrl, RenderError> {
        match self {
            CompiledUrl::Template { template, prefix } => {
                let url = template.render_checked(ctx, check_rendered_url)?;
                if !url.starts_with(prefix.as_str()) {
                    // Cannot happen with literal text before the first tag, but the host
                    // guarantee is a security property: check it rather than assume it.
                    return Err(template.invalid(&url, format!("does not start with `{prefix}`")));
                }
                Ok(WebhookUrl::Rendered(url))
            }
            CompiledUrl::Secret(reference) => Ok(WebhookUrl::Secret(reference.clone())),
        }
    }
}
