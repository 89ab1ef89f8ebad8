//! Property tests: no template source makes compiling panic, and no event makes rendering panic
//! (errors are fine: a bad template is a diagnostic, a failed render an outcome).

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use super::tests::match_info;
use super::*;
use crate::event::Event;
use crate::event::decode::arbitrary::{config, event, near_valid, text_from};

/// Pieces of template syntax, so random text reaches every branch of the scan and the compiler.
pub(super) const SYNTAX: &[&str] = &[
    "{{", "}}", "{%", "%}", "{#", "#}", "{", "}", "-", "+", "|", " is ", " not ", "raw", "endraw",
    "filter", "if", "endif", "for", "in", "event", "meta", "match", "rule", ".x", ".labels",
    "upper", "default", "tojson", "'", "\"", "\\", "(", ")", "~", "[0]", "*", "9e999",
];

/// Templates in the style of the shipped rules, rendered against random events.
const TEMPLATES: &[&str] = &[
    "{{ event.labels.namespace }}/{{ event.labels.deployment }}",
    "{{ event.labels.alertname }}/{{ event.labels.namespace | default('cluster') }}",
    "{{ event.source.host if event.reason == \"Evicted\" else event.involvedObject.name }}",
    "{{ event }}",
    "{{ event.count + 1 }}",
    "{{ event.desiredReplicas * 2 }}",
    "{{ event | tojson }}",
    "{{ meta }}{{ meta.headers }}{{ meta.attributes | tojson }}",
    "{% for k, v in event | items %}{{ k }}={{ v }},{% endfor %}",
    "{{ event.labels | dictsort }}",
    "{{ event.alerts[0].labels.severity | upper }}",
    "{{ event.output_fields['k8s.pod.name'] }}",
    "{{ match.events }}{{ match.count }}{{ match.key }}",
    "{{ event.x | int }}{{ event.x | float }}{{ event.x | length }}",
];

/// Variables and paths into the events and contexts the strategies generate.
const VARIABLES: &[&str] = &[
    "event",
    "event.labels",
    "event.labels.severity",
    "event.labels['app.kubernetes.io/name']",
    "event.alerts[0].labels",
    "event.alerts[-1]",
    "event.count",
    "event.status",
    "event.output_fields['k8s.ns.name']",
    "event['']",
    "meta",
    "meta.headers",
    "meta.attributes",
    "meta.timestamp",
    "meta.key",
    "meta.partition",
    "meta.offset",
    "rule.name",
    "match.key",
    "match.count",
    "match.first_at",
    "match.events.oom",
    "'é😀'",
    "18446744073709551615",
    "-9223372036854775808",
    "1e308",
    "[1, 'a', none]",
];

/// What can follow a variable: filters (Reflex's own included), operators and tests.
const SUFFIXES: &[&str] = &[
    "",
    " | upper",
    " | lower",
    " | default('x')",
    " | tojson",
    " | int",
    " | float",
    " | length",
    " | first",
    " | last",
    " | items",
    " | dictsort",
    " | join(',')",
    " | replace('a', 'é')",
    " | trim",
    " | string",
    " | dns_label",
    " | urlencode",
    " + 1",
    " * 2",
    " // 0",
    " % 0",
    " ** 64",
    " * 999999999",
    "[::0]",
    "[1:-1]",
    " | indent(999999999)",
    " ~ 'x'",
    " is defined",
    " is not none",
    " in [1, 2]",
    "[0]",
    "[1:]",
    ".x",
];

/// One expression: a variable with up to two suffixes.
fn jinja_expression() -> impl Strategy<Value = String> {
    (select(VARIABLES), select(SUFFIXES), select(SUFFIXES))
        .prop_map(|(v, a, b)| format!("{v}{a}{b}"))
}

/// Templates built from well-formed tags (output, `if`, `for`, comments, `raw`) around
/// literal text, sometimes with a random piece spliced in; or random text.
fn template_source() -> impl Strategy<Value = String> {
    let literal = text_from(&["a", " ", "-", "/"]);
    let part = prop_oneof![
        2 => literal.clone(),
        4 => jinja_expression().prop_map(|e| format!("{{{{ {e} }}}}")),
        1 => (jinja_expression(), jinja_expression())
            .prop_map(|(c, e)| format!("{{% if {c} %}}{{{{ {e} }}}}{{% else %}}-{{% endif %}}")),
        1 => (jinja_expression(), jinja_expression())
            .prop_map(|(c, e)| format!("{{% for x in {c} %}}{{{{ x }}}}{{{{ {e} }}}}{{% endfor %}}")),
        1 => literal.clone().prop_map(|t| format!("{{# {t} #}}")),
        1 => literal.prop_map(|t| format!("{{% raw %}}{t}{{% endraw %}}")),
    ];
    let valid = vec(part, 1..4).prop_map(|parts| parts.concat());
    near_valid(valid.boxed(), SYNTAX)
}

fn scope() -> impl Strategy<Value = Scope> {
    select(vec![Scope::Key, Scope::Action])
}

fn context(event: &Event, scope: Scope) -> RenderContext {
    let matched = match scope {
        Scope::Key => None,
        Scope::Action => Some(match_info()),
    };
    RenderContext::new(event, "props", matched.as_ref())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn no_source_panics_compile_or_render(text in template_source(), scope in scope(), event in event()) {
        let mut diags = Diagnostics::new();
        let compiled = Template::compile_at(&text, Location::UNKNOWN, scope, &mut diags);
        prop_assert_eq!(compiled.is_none(), !diags.is_empty(), "{:?}", diags.into_vec());
        if let Some(template) = compiled {
            let ctx = context(&event, scope);
            let _ = template.render(&ctx);
            let _ = template.render_value(&ctx);
        }
    }

    #[test]
    fn no_event_panics_a_render(template in select(TEMPLATES), event in event()) {
        let mut diags = Diagnostics::new();
        let template = Template::compile_at(template, Location::UNKNOWN, Scope::Action, &mut diags)
            .expect("the sample templates compile");
        let ctx = context(&event, Scope::Action);
        if let Ok(text) = template.render(&ctx) {
            prop_assert!(text.len() <= MAX_OUTPUT);
        }
        let _ = template.render_value(&ctx);
    }

    #[test]
    fn text_without_template_syntax_renders_to_itself(text in any::<String>(), event in event()) {
        prop_assume!(!is_template(&text));
        let mut diags = Diagnostics::new();
        let template = Template::compile_at(&text, Location::UNKNOWN, Scope::Key, &mut diags)
            .expect("a constant compiles");
        prop_assert_eq!(template.render(&context(&event, Scope::Key)).ok(), Some(text));
    }
}
