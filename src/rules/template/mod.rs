//! Action parameter and group-key templates (minijinja), parsed once at load, rendered per event.
//!
//! A template is any rule string containing `{{`, `{%` or `{#`; anything else is a constant and
//! never touches minijinja. Templates are checked at load (syntax, root variables, filter and test
//! names) and evaluated with strict undefined handling: a missing variable or attribute is an
//! error, never an empty string. Every render is bounded in work ([`FUEL`]) and output
//! ([`MAX_OUTPUT`]), because event data flows through templates and must not be able to make a
//! render run forever or grow without limit.
//!
//! Templates see `event` (the payload), `meta` (the event's metadata), `rule` (`rule.name`) and,
//! in action parameters only, `match` (`match.key`, `match.count`, `match.first_at`,
//! `match.events.<step>`); see [`RenderContext`].

mod context;
mod filters;
#[cfg(test)]
mod props;
mod scan;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, OnceLock};

use minijinja::syntax::SyntaxConfig;
use minijinja::{AutoEscape, Environment, ErrorKind, Expression, UndefinedBehavior};
use serde_saphyr::Location;

use super::diagnostic::{Diagnostics, closest};
use super::model::SpannedString;

pub use context::RenderContext;

/// Longest rendered output of one template, in bytes (for [`Template::render_value`], the size of
/// the produced JSON value, roughly).
///
/// Rendered strings become object names, label values, URLs, headers, record keys and leaves of
/// request bodies; the longest legitimate ones (a chat message, an annotation, a manifest field)
/// are a few KiB. 64 KiB leaves ample room for those while stopping a template, or event data fed
/// through one, from amplifying into megabytes per event; for scale, a Kafka record defaults to
/// at most 1 MiB and a Kubernetes object's annotations to 256 KiB in total.
pub const MAX_OUTPUT: usize = 64 * 1024;

/// Evaluation budget of one render, in minijinja fuel (one unit per instruction, plus one per
/// 64 bytes of data produced or visited).
///
/// A parameter template runs tens of instructions; a loop formatting a few hundred alert labels
/// runs a few thousand. 50,000 leaves an order of magnitude of headroom while capping a runaway
/// template (a nested `{% for %}` bomb, an event with a huge list) at roughly 10 ms of CPU and a
/// few MiB of memory before it fails cleanly.
pub const FUEL: u64 = 50_000;

/// Longest template source quoted in error messages; longer sources are cut with `…` so errors
/// (which end up in outcomes and logs) stay one readable line.
const QUOTE_LEN: usize = 80;

/// The name the single template of each per-template environment is stored under.
const NAME: &str = "template";

/// Which variables a template may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Group-key templates (`throttle.key`, `threshold.key`, `correlate.key`, `absence.key`):
    /// `event`, `meta`, `rule`. They are rendered before any window exists, so no `match`.
    Key,
    /// Action parameters: `event`, `meta`, `rule` and `match`.
    Action,
}

impl Scope {
    /// The root variables templates of this scope may reference.
    pub fn roots(self) -> &'static [&'static str] {
        match self {
            Scope::Key => &["event", "meta", "rule"],
            Scope::Action => &["event", "meta", "rule", "match"],
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Scope::Key => "group-key templates",
            Scope::Action => "action parameter templates",
        }
    }
}

/// Why rendering failed. Every variant names the template (or parameter) concerned.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Evaluation failed: an undefined variable or attribute (strict mode), a type error, a filter
    /// error, or the evaluation budget ran out.
    #[error("template `{template}` failed: {reason}")]
    Eval {
        /// The template source (shortened).
        template: String,
        /// What went wrong, from the template engine.
        reason: String,
    },
    /// The output exceeded [`MAX_OUTPUT`].
    #[error("template `{template}` rendered more than {limit} bytes")]
    TooLarge {
        /// The template source (shortened).
        template: String,
        /// The bound that was exceeded.
        limit: usize,
    },
    /// A rendered value is not acceptable for the parameter it fills (not an integer, not a valid
    /// Kubernetes name, a header value with a newline, ...).
    #[error("parameter `{param}`: {reason}")]
    Invalid {
        /// Dotted path of the parameter, e.g. `target.name` or `headers.X-Team`.
        param: String,
        /// What is wrong and what was expected.
        reason: String,
    },
    /// Rendering one parameter of an action failed.
    #[error("parameter `{param}`: {error}")]
    Param {
        /// Dotted path of the parameter, e.g. `replicas` or `body.text`.
        param: String,
        /// The underlying failure.
        error: Box<RenderError>,
    },
}

impl RenderError {
    /// Wraps this error as the failure of parameter `param`.
    pub fn in_param(self, param: impl Into<String>) -> RenderError {
        RenderError::Param {
            param: param.into(),
            error: Box::new(self),
        }
    }
}

/// A compiled template: parsed once at load, rendered per event without re-parsing.
/// Cheap to clone (shared).
#[derive(Clone)]
pub struct Template {
    inner: Arc<Inner>,
}

struct Inner {
    source: String,
    body: Body,
    /// When the whole source is one `{{ expression }}`: the expression, so free-form values can
    /// keep the type of what it evaluates to (see [`Template::render_value`]).
    native: Option<Native>,
}

/// A single-expression template compiled as an expression.
struct Native {
    /// The expression text, for messages.
    text: String,
    expr: Expression<'static, 'static>,
}

enum Body {
    /// No template syntax: renders to the source itself.
    Constant,
    /// A clone of the shared environment holding this one template. minijinja templates borrow
    /// their source from the environment that owns them; an environment per template (its
    /// filters and settings are `Arc`-shared, so a clone is a few pointer copies) lets the
    /// template own its source without `unsafe` or leaking.
    Jinja(Box<Environment<'static>>),
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Template").field(&self.inner.source).finish()
    }
}

/// The environment every template is compiled against: strict undefined, no auto-escaping (the
/// output is not HTML), bounded fuel, trailing newlines kept (so a YAML block scalar renders
/// like the constant it would be without `{{ }}`), plus Reflex's own filters.
fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // SemiStrict: printing, iterating or filtering an undefined value is an error (never a
        // silent empty string), but `{% if event.x is defined %}`-style tests and plain
        // `{% if event.x %}` checks work, as rule authors expect.
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_fuel(Some(FUEL));
        if let Ok(syntax) = SyntaxConfig::builder().keep_trailing_newline(true).build() {
            env.set_syntax(syntax);
        }
        filters::register(&mut env);
        env
    })
}

/// True when `text` contains template syntax.
fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// Shortens a template source for messages.
pub(crate) fn quote(source: &str) -> String {
    let one_line = source.replace('\n', "\\n");
    if one_line.chars().count() <= QUOTE_LEN {
        one_line
    } else {
        let cut: String = one_line.chars().take(QUOTE_LEN).collect();
        format!("{cut}…")
    }
}

/// Describes a minijinja error without the internal template name.
fn describe(err: &minijinja::Error, source: &str) -> String {
    let mut out = match err.kind() {
        ErrorKind::OutOfFuel => format!(
            "evaluation budget exhausted (templates are limited to {FUEL} fuel units per render; \
             the template loops too much or processes too much data)"
        ),
        kind => match err.detail() {
            Some(detail) => format!("{kind}: {detail}"),
            None => kind.to_string(),
        },
    };
    if source.contains('\n')
        && let Some(line) = err.line()
    {
        out.push_str(&format!(" (template line {line})"));
    }
    out
}

impl Template {
    /// Parses `src.value`; pushes a diagnostic at the scalar's location on syntax errors, on any
    /// reference to a root variable the scope does not provide, and on unknown filters or tests.
    pub fn compile(src: &SpannedString, scope: Scope, diags: &mut Diagnostics) -> Option<Template> {
        Self::compile_at(&src.value, src.referenced, scope, diags)
    }

    /// Same as [`Template::compile`] for a string whose own location is not known (a string
    /// nested in a free-form YAML body); `at` is the closest known location.
    pub fn compile_at(
        text: &str,
        at: Location,
        scope: Scope,
        diags: &mut Diagnostics,
    ) -> Option<Template> {
        if !is_template(text) {
            return Some(Self::constant(text));
        }
        let base = environment();
        let mut env = base.clone();
        if let Err(err) = env.add_template_owned(NAME, text.to_owned()) {
            let near = err
                .range()
                .and_then(|r| text.get(r))
                .filter(|s| !s.trim().is_empty())
                .map(|s| format!(" near `{}`", quote(s)))
                .unwrap_or_default();
            diags.error(
                at,
                format!(
                    "invalid template `{}`: {}{near}",
                    quote(text),
                    describe(&err, text)
                ),
                Some(
                    "templates use minijinja (Jinja2) syntax: `{{ event.labels.app }}`, \
                     `{% if ... %}...{% endif %}`"
                        .to_owned(),
                ),
            );
            return None;
        }
        let mut ok = true;
        let undeclared = match env.get_template(NAME) {
            Ok(tmpl) => tmpl.undeclared_variables(false),
            Err(_) => Default::default(),
        };
        let globals: BTreeSet<&str> = base.globals().map(|(name, _)| name).collect();
        let mut unknown: Vec<&String> = undeclared
            .iter()
            .filter(|name| {
                !scope.roots().contains(&name.as_str()) && !globals.contains(name.as_str())
            })
            .collect();
        unknown.sort();
        for name in unknown {
            ok = false;
            let valid = scope
                .roots()
                .iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut hint = format!("{} can use {valid}", scope.describe());
            if name == "match" && scope == Scope::Key {
                hint.push_str("; `match` exists only in action parameters, after the rule fired");
            } else if let Some(near) = closest(name, scope.roots().iter().copied()) {
                hint = format!("did you mean `{near}`? {hint}");
            }
            diags.error(
                at,
                format!("template `{}` uses unknown variable `{name}`", quote(text)),
                Some(hint),
            );
        }
        for name in scan::unknown_filters(text, base) {
            ok = false;
            diags.error(
                at,
                format!("template `{}` uses unknown filter `{name}`", quote(text)),
                Some(format!(
                    "filters are minijinja's built-ins (`lower`, `upper`, `default`, `replace`, \
                     `tojson`, ...) plus {}",
                    filters::CUSTOM
                        .iter()
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            );
        }
        for name in scan::unknown_tests(text, base) {
            ok = false;
            diags.error(
                at,
                format!("template `{}` uses unknown test `{name}`", quote(text)),
                Some(
                    "tests are minijinja's built-ins: `defined`, `none`, `number`, `string`, ..."
                        .to_owned(),
                ),
            );
        }
        if !ok {
            return None;
        }
        let native = scan::single_expression(text).and_then(|expr| {
            let compiled = base.compile_expression_owned(expr.to_owned()).ok()?;
            Some(Native {
                text: expr.to_owned(),
                expr: compiled,
            })
        });
        Some(Template {
            inner: Arc::new(Inner {
                source: text.to_owned(),
                body: Body::Jinja(Box::new(env)),
                native,
            }),
        })
    }

    /// A template that always renders to `text` (no parsing; `text` may even contain `{{`).
    pub fn constant(text: &str) -> Template {
        Template {
            inner: Arc::new(Inner {
                source: text.to_owned(),
                body: Body::Constant,
                native: None,
            }),
        }
    }

    /// Renders to a string. Undefined variables or attributes are errors, never empty strings;
    /// output longer than [`MAX_OUTPUT`] and evaluation beyond [`FUEL`] are errors.
    pub fn render(&self, ctx: &RenderContext) -> Result<String, RenderError> {
        let env = match &self.inner.body {
            Body::Constant => return Ok(self.inner.source.clone()),
            Body::Jinja(env) => env,
        };
        let rendered = env
            .get_template(NAME)
            .and_then(|tmpl| tmpl.render(ctx.value()))
            .map_err(|err| self.eval_error(&err))?;
        if rendered.len() > MAX_OUTPUT {
            return Err(RenderError::TooLarge {
                template: quote(&self.inner.source),
                limit: MAX_OUTPUT,
            });
        }
        Ok(rendered)
    }

    /// Renders to a JSON value, for string leaves of free-form YAML (webhook bodies, patches,
    /// manifests, Kafka values). A template that is exactly one `{{ expression }}` keeps the type
    /// of what it evaluates to (`"{{ event.replicas }}"` → `3`, `"{{ event.labels }}"` → an
    /// object); anything else renders to a string. Same strictness and bounds as
    /// [`Template::render`].
    pub fn render_value(&self, ctx: &RenderContext) -> Result<serde_json::Value, RenderError> {
        let Some(native) = &self.inner.native else {
            return self.render(ctx).map(serde_json::Value::String);
        };
        let value = native
            .expr
            .eval(ctx.value())
            .map_err(|err| self.eval_error(&err))?;
        if value.is_undefined() {
            // Strict mode makes printing an undefined value fail; an expression evaluated for its
            // value must fail the same way rather than produce a null.
            return Err(RenderError::Eval {
                template: quote(&self.inner.source),
                reason: format!("undefined value: `{}` is undefined", native.text),
            });
        }
        let mut budget = MAX_OUTPUT;
        context::to_json(&value, &mut budget).map_err(|err| match err {
            context::ToJsonError::TooLarge => RenderError::TooLarge {
                template: quote(&self.inner.source),
                limit: MAX_OUTPUT,
            },
            context::ToJsonError::Invalid(reason) => RenderError::Eval {
                template: quote(&self.inner.source),
                reason,
            },
        })
    }

    /// The template source as written.
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// True when the source has no template syntax (renders to itself).
    pub fn is_constant(&self) -> bool {
        matches!(self.inner.body, Body::Constant)
    }

    fn eval_error(&self, err: &minijinja::Error) -> RenderError {
        RenderError::Eval {
            template: quote(&self.inner.source),
            reason: describe(err, &self.inner.source),
        }
    }
}
