//! Property tests: no template source makes compiling panic, and no event makes rendering panic
//! (errors are fine: a bad template is a diagnostic, a failed render an outcome).

use proptest::prelude::*;
use proptest::sample::select;

use super::tests::match_info;
use super::*;
use crate::event::Event;
use crate::event::decode::arbitrary::{config, event, text_from};

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
    fn no_source_panics_compile_or_render(text in text_from(SYNTAX), scope in scope(), event in event()) {
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
