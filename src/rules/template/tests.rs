//! Template tests: load-time checks, strict rendering, bounds, filters and the context.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use serde::Deserialize;
use serde_json::json;

use super::*;
use crate::event::{Event, Format, Metadata};
use crate::rules::diagnostic::Diagnostic;
use crate::rules::state::MatchInfo;

/// An Alertmanager-like event used across template and action tests.
pub(crate) fn event(payload: serde_json::Value) -> Event {
    Event {
        payload,
        meta: Metadata {
            id: "fp-1/2024-05-01T12:00:00Z/firing".into(),
            topic: "alerts".into(),
            partition: 3,
            offset: 42,
            key: Some("k1".into()),
            headers: BTreeMap::from([("trace-id".to_owned(), "abc".to_owned())]),
            timestamp: Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap(),
            format: Format::Alertmanager,
            event_type: Some("KubePodCrashLooping".into()),
            source: Some("prometheus".into()),
            attributes: BTreeMap::from([("status".to_owned(), json!("firing"))]),
        },
    }
}

/// A firing's match info with one correlated step.
pub(crate) fn match_info() -> MatchInfo {
    MatchInfo {
        key: Some("shop/web".into()),
        count: 3,
        first_at: Some(Utc.with_ymd_and_hms(2024, 5, 1, 11, 58, 0).unwrap()),
        events: BTreeMap::from([("oom".to_owned(), json!({"reason": "OOMKilled"}))]),
    }
}

fn ctx(payload: serde_json::Value) -> RenderContext {
    RenderContext::new(&event(payload), "restart-crashlooping", Some(&match_info()))
}

fn compile(text: &str, scope: Scope) -> Result<Template, Vec<Diagnostic>> {
    let mut diags = Diagnostics::new();
    let at = Location::UNKNOWN;
    match Template::compile_at(text, at, scope, &mut diags) {
        Some(t) if diags.is_empty() => Ok(t),
        _ => Err(diags.into_vec()),
    }
}

fn render(text: &str, payload: serde_json::Value) -> Result<String, RenderError> {
    let template = compile(text, Scope::Action).expect("template compiles");
    template.render(&ctx(payload))
}

#[derive(Debug, Deserialize)]
struct Located {
    #[allow(dead_code)]
    other: u32,
    key: SpannedString,
}

/// Compiles the `key` of a small YAML document, returning the diagnostics.
fn compile_located(yaml: &str, scope: Scope) -> Vec<Diagnostic> {
    let doc: Located = serde_saphyr::from_str(yaml).expect("valid YAML");
    let mut diags = Diagnostics::new();
    let compiled = Template::compile(&doc.key, scope, &mut diags);
    assert_eq!(
        compiled.is_none(),
        !diags.is_empty(),
        "None exactly when diagnosed"
    );
    diags.into_vec()
}

#[test]
fn text_without_template_syntax_is_a_constant_rendered_verbatim() {
    let t = compile("plain text with } and { and %", Scope::Action).unwrap();
    assert!(t.is_constant());
    assert_eq!(
        t.render(&ctx(json!({}))).unwrap(),
        "plain text with } and { and %"
    );
    assert_eq!(t.source(), "plain text with } and { and %");
}

#[test]
fn templates_see_event_meta_rule_and_match() {
    let out = render(
        "{{ event.labels.app }}|{{ meta.topic }}/{{ meta.partition }}/{{ meta.offset }}|{{ meta.key }}|\
         {{ meta.headers['trace-id'] }}|{{ meta.timestamp }}|{{ meta.format }}|{{ meta.type }}|\
         {{ meta.source }}|{{ meta.attributes.status }}|{{ meta.id }}|{{ rule.name }}|\
         {{ match.key }}|{{ match.count }}|{{ match.first_at }}|{{ match.events.oom.reason }}",
        json!({"labels": {"app": "web"}}),
    )
    .unwrap();
    assert_eq!(
        out,
        "web|alerts/3/42|k1|abc|2024-05-01T12:00:00Z|alertmanager|KubePodCrashLooping|prometheus|\
         firing|fp-1/2024-05-01T12:00:00Z/firing|restart-crashlooping|shop/web|3|2024-05-01T11:58:00Z|OOMKilled"
    );
}

#[test]
fn undefined_attribute_is_an_error_not_an_empty_string() {
    let err = render("pod-{{ event.labels.missing }}", json!({"labels": {}})).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RenderError::Eval { .. }), "{err:?}");
    assert!(msg.contains("event.labels.missing"), "{msg}");
    assert!(
        msg.contains("pod-{{ event.labels.missing }}"),
        "names the template: {msg}"
    );
}

#[test]
fn default_filter_and_defined_test_handle_missing_values_explicitly() {
    let payload = json!({"labels": {}});
    assert_eq!(
        render("{{ event.labels.team | default('ops') }}", payload.clone()).unwrap(),
        "ops"
    );
    assert_eq!(
        render(
            "{% if event.labels.team is defined %}x{% else %}none{% endif %}",
            payload
        )
        .unwrap(),
        "none"
    );
}

#[test]
fn unknown_root_variable_is_a_load_diagnostic_at_the_scalar_with_a_hint() {
    let diags = compile_located("other: 1\nkey: \"{{ evnt.labels.app }}\"\n", Scope::Action);
    assert_eq!(diags.len(), 1, "{diags:?}");
    let d = &diags[0];
    assert_eq!((d.line, d.column), (2, 6));
    assert!(
        d.message.contains("unknown variable `evnt`"),
        "{}",
        d.message
    );
    let hint = d.hint.as_deref().unwrap_or_default();
    assert!(hint.contains("did you mean `event`"), "{hint}");
    assert!(hint.contains("`match`"), "action scope lists match: {hint}");
}

#[test]
fn match_is_rejected_in_group_key_templates_with_an_explanation() {
    let diags = compile_located("other: 1\nkey: \"{{ match.key }}\"\n", Scope::Key);
    assert_eq!(diags.len(), 1, "{diags:?}");
    let hint = diags[0].hint.as_deref().unwrap_or_default();
    assert!(hint.contains("only in action parameters"), "{hint}");
    assert!(
        !hint.contains("`match`,"),
        "key scope does not list match as valid: {hint}"
    );
}

#[test]
fn syntax_error_is_a_load_diagnostic_at_the_scalar() {
    let diags = compile_located("other: 1\nkey: \"{{ event.x \"\n", Scope::Action);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!((diags[0].line, diags[0].column), (2, 6));
    assert!(
        diags[0].message.contains("invalid template"),
        "{}",
        diags[0].message
    );
}

#[test]
fn every_unknown_name_is_reported_not_only_the_first() {
    let errs = compile(
        "{{ foo }}{{ bar | lowr }}{% if x is numbr %}{% endif %}",
        Scope::Action,
    )
    .unwrap_err();
    let text: Vec<&str> = errs.iter().map(|d| d.message.as_str()).collect();
    assert!(
        text.iter().any(|m| m.contains("variable `bar`")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|m| m.contains("variable `foo`")),
        "{text:?}"
    );
    assert!(text.iter().any(|m| m.contains("variable `x`")), "{text:?}");
    assert!(text.iter().any(|m| m.contains("filter `lowr`")), "{text:?}");
    assert!(text.iter().any(|m| m.contains("test `numbr`")), "{text:?}");
}

#[test]
fn loop_variables_globals_and_known_filters_are_accepted() {
    let t = compile(
        "{% for a in event.alerts %}{{ loop.index }}:{{ a.name | upper }}{% endfor %}\
         {% set n = namespace(x=1) %}{{ range(2) | list | length }}{{ event.x | tojson }}",
        Scope::Action,
    );
    assert!(t.is_ok(), "{t:?}");
}

#[test]
fn output_longer_than_the_bound_is_an_error() {
    let long = "y".repeat(100);
    let err = render(
        "{% for i in range(1000) %}{{ event.s }}{% endfor %}",
        json!({"s": long}),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            RenderError::TooLarge {
                limit: MAX_OUTPUT,
                ..
            }
        ),
        "{err:?}"
    );
    // Just under the bound renders.
    let ok = render(
        "{% for i in range(600) %}{{ event.s }}{% endfor %}",
        json!({"s": "y".repeat(100)}),
    );
    assert_eq!(ok.unwrap().len(), 60_000);
}

#[test]
fn a_nested_loop_bomb_runs_out_of_fuel_cleanly() {
    let started = std::time::Instant::now();
    let err = render(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        json!({}),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("evaluation budget exhausted"),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "stopped promptly"
    );
}

#[test]
fn single_expression_values_keep_their_type() {
    let c = ctx(json!({"n": 3, "labels": {"a": "1"}, "ok": true, "none": null, "s": "3"}));
    let value = |text: &str| {
        compile(text, Scope::Action)
            .unwrap()
            .render_value(&c)
            .unwrap()
    };
    assert_eq!(value("{{ event.n }}"), json!(3));
    assert_eq!(value("{{ event.labels }}"), json!({"a": "1"}));
    assert_eq!(value("{{ event.ok }}"), json!(true));
    assert_eq!(value("{{ event.none }}"), json!(null));
    assert_eq!(value("{{ event.s }}"), json!("3"), "strings stay strings");
    assert_eq!(value("{{ event.n + 1 }}"), json!(4));
    assert_eq!(
        value("n={{ event.n }}"),
        json!("n=3"),
        "text around makes a string"
    );
    assert_eq!(value("static"), json!("static"));
}

#[test]
fn single_expression_value_of_an_undefined_attribute_is_an_error() {
    let t = compile("{{ event.nope }}", Scope::Action).unwrap();
    let err = t.render_value(&ctx(json!({}))).unwrap_err();
    assert!(
        err.to_string().contains("`event.nope` is undefined"),
        "{err}"
    );
}

#[test]
fn block_scalar_templates_keep_their_trailing_newline_like_constants() {
    assert_eq!(
        render("line {{ event.n }}\n", json!({"n": 1})).unwrap(),
        "line 1\n"
    );
}

#[test]
fn dns_label_makes_valid_kubernetes_names() {
    assert_eq!(
        filters::dns_label("Shop_Web.API--v2!").unwrap(),
        "shop-web-api-v2"
    );
    assert_eq!(filters::dns_label("--x--").unwrap(), "x");
    let long = "a".repeat(40) + "/" + &"b".repeat(40);
    let label = filters::dns_label(&long).unwrap();
    assert_eq!(label.len(), 63);
    assert!(label.starts_with("aaaa") && !label.ends_with('-'));
    let other = filters::dns_label(&("a".repeat(40) + "/" + &"b".repeat(41))).unwrap();
    assert_ne!(label, other, "the hash suffix keeps long inputs distinct");
    assert!(filters::dns_label("!!!").is_err());
    assert_eq!(
        render("{{ event.n | dns_label }}", json!({"n": "Web Pod"})).unwrap(),
        "web-pod"
    );
}

#[test]
fn urlencode_escapes_everything_outside_unreserved() {
    assert_eq!(
        filters::urlencode("a b/c?d=é~_.-"),
        "a%20b%2Fc%3Fd%3D%C3%A9~_.-"
    );
}

#[test]
fn with_match_and_with_rule_reuse_the_converted_event() {
    let e = event(json!({"x": 1}));
    let key_ctx = RenderContext::new(&e, "r", None);
    let t = compile("{{ event.x }}-{{ match.count }}", Scope::Action).unwrap();
    assert!(t.render(&key_ctx).is_err(), "no match in a key context");
    assert_eq!(t.render(&key_ctx.with_match(&match_info())).unwrap(), "1-3");
    let other = key_ctx.with_rule("other-rule");
    let name = compile("{{ rule.name }}:{{ event.x }}", Scope::Key).unwrap();
    assert_eq!(name.render(&other).unwrap(), "other-rule:1");
    assert_eq!(
        name.render(&key_ctx).unwrap(),
        "r:1",
        "the original is unchanged"
    );
}

#[test]
fn templates_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_send_sync::<Template>();
    assert_send_sync::<RenderContext>();
}
