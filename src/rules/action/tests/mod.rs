//! Action tests: parsing from YAML, load-time validation with locations, rendering.

mod kafka_log;
mod kubernetes;
mod webhook;

use serde::Deserialize;
use serde_json::json;

use super::*;
use crate::rules::diagnostic::Diagnostic;
use crate::rules::template::tests::{event, match_info};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    actions: Vec<ActionSpec>,
}

/// Parses `actions:` YAML (one action) the way rule files are parsed.
fn parse(yaml: &str) -> Result<ActionSpec, String> {
    let mut doc: Doc = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
    assert_eq!(doc.actions.len(), 1, "one action per test document");
    Ok(doc.actions.remove(0))
}

/// Parses and compiles; the diagnostics on failure.
fn compile(yaml: &str) -> Result<CompiledAction, Vec<Diagnostic>> {
    let spec = parse(yaml).unwrap_or_else(|e| panic!("YAML should parse: {e}"));
    let mut diags = Diagnostics::new();
    let compiled = CompiledAction::compile(&spec, &mut diags);
    match compiled {
        Some(c) if diags.is_empty() => {
            assert_eq!(c.kind, spec.kind());
            Ok(c)
        }
        Some(_) => panic!(
            "compile returned an action despite diagnostics: {:?}",
            diags.into_vec()
        ),
        None => {
            assert!(!diags.is_empty(), "compile failed without a diagnostic");
            Err(diags.into_vec())
        }
    }
}

/// Compiles (which must succeed) and renders for `payload`; returns the parameters as JSON.
fn render(yaml: &str, payload: serde_json::Value) -> Result<serde_json::Value, RenderError> {
    let action = compile(yaml).unwrap_or_else(|d| panic!("should compile: {d:#?}"));
    let ctx = RenderContext::new(&event(payload), "test-rule", Some(&match_info()));
    let rendered = action.render(&ctx)?;
    assert_eq!(
        rendered.kind(),
        action.kind,
        "the rendered action has the compiled kind"
    );
    Ok(rendered.params_json())
}

/// The diagnostics of a YAML action that must fail to compile.
fn diagnostics(yaml: &str) -> Vec<Diagnostic> {
    match compile(yaml) {
        Ok(a) => panic!("should not compile: {a:?}"),
        Err(d) => d,
    }
}

/// Asserts one diagnostic contains `needle`, returning it.
fn find<'a>(diags: &'a [Diagnostic], needle: &str) -> &'a Diagnostic {
    diags
        .iter()
        .find(|d| d.message.contains(needle))
        .unwrap_or_else(|| panic!("no diagnostic mentions {needle:?}: {diags:#?}"))
}

#[test]
fn spanned_fields_inside_a_variant_carry_their_location() {
    // Early check required by the design: serde-saphyr keeps locations of `Spanned` values
    // inside externally tagged enum variants, so template errors point into the file.
    let diags = diagnostics(
        "actions:\n  - restart:\n      target:\n        namespace: shop\n        name: \"{{ evnt.name }}\"\n",
    );
    let d = find(&diags, "unknown variable `evnt`");
    assert_eq!((d.line, d.column), (5, 15));
}

#[test]
fn unknown_field_inside_a_variant_is_an_error_naming_the_field_with_its_location() {
    let err = parse(
        "actions:\n  - scale:\n      target: {namespace: shop, name: web}\n      replicaz: 3\n",
    )
    .unwrap_err();
    assert!(err.contains("unknown field `replicaz`"), "{err}");
    assert!(err.contains("line 4 column 7"), "{err}");
    assert!(err.contains("replicas"), "lists the valid fields: {err}");
}

#[test]
fn unknown_action_kind_lists_the_valid_kinds() {
    let err = parse("actions:\n  - scael: {target: {name: web}}\n").unwrap_err();
    assert!(err.contains("unknown variant `scael`"), "{err}");
    assert!(err.contains("scale") && err.contains("webhook"), "{err}");
}

#[test]
fn wrong_types_are_errors_with_locations() {
    let err = parse("actions:\n  - set_image:\n      target: {namespace: a, name: b}\n      image: x\n      wait: maybe\n")
        .unwrap_err();
    assert!(err.contains("line 5"), "{err}");
    let err = parse("actions:\n  - scale:\n      target: {namespace: a, name: b}\n      replicas: 1\n      min: -1\n")
        .unwrap_err();
    assert!(err.contains("line 5"), "{err}");
    let err =
        parse("actions:\n  - webhook:\n      url: https://x/\n      method: FETCH\n").unwrap_err();
    assert!(err.contains("FETCH"), "{err}");
}

#[test]
fn undefined_variable_at_render_fails_and_names_the_parameter() {
    let err = render(
        "actions:\n  - restart:\n      target: {namespace: shop, name: \"{{ event.labels.deployment }}\"}\n",
        json!({"labels": {}}),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("parameter `target.name`"), "{msg}");
    assert!(msg.contains("event.labels.deployment"), "{msg}");
}

#[test]
fn every_problem_of_an_action_is_reported_at_once() {
    let diags = diagnostics(
        "actions:\n  - scale:\n      target: {kind: Deployment, name: \"{{ bad }}\"}\n      change: \"2\"\n      min: 5\n      max: 1\n",
    );
    find(&diags, "namespace` is required");
    find(&diags, "unknown variable `bad`");
    find(&diags, "has no sign");
    find(&diags, "`min` (5) is greater than `max` (1)");
}

#[test]
fn action_kind_names_match_the_yaml_tags() {
    for kind in ActionKind::ALL {
        assert_eq!(serde_json::to_value(kind).unwrap(), json!(kind.as_str()));
    }
    let names: std::collections::BTreeSet<&str> =
        ActionKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(names.len(), ActionKind::ALL.len(), "names are distinct");
    assert!(ActionKind::Scale.is_kubernetes() && !ActionKind::Webhook.is_kubernetes());
}

#[test]
fn the_json_schema_describes_every_action_kind() {
    let schema = serde_json::to_string(&schemars::schema_for!(ActionSpec)).unwrap();
    for kind in ActionKind::ALL {
        assert!(
            schema.contains(&format!("\"{}\"", kind.as_str())),
            "{} missing",
            kind.as_str()
        );
    }
    assert!(schema.contains("allow_bare_pods") && schema.contains("success_status"));
    // `replicas: 3` and `replicas: "{{ ... }}"` are both valid for editors using the schema.
    let value: serde_json::Value = serde_json::from_str(&schema).unwrap();
    let replicas = value["$defs"]["ScaleSpec"]["properties"]["replicas"].to_string();
    assert!(replicas.contains("#/$defs/IntOrString"), "{replicas}");
    let either = value["$defs"]["IntOrString"].to_string();
    assert!(
        either.contains("integer") && either.contains("string"),
        "{either}"
    );
}

#[test]
fn kubernetes_resource_reports_what_rbac_must_allow() {
    let a =
        compile("actions:\n  - scale: {target: {namespace: a, name: b}, replicas: 1}\n").unwrap();
    assert_eq!(a.kubernetes_resource(), Some(("apps/v1", "Deployment")));
    let a = compile("actions:\n  - cordon: {node: n1}\n").unwrap();
    assert_eq!(a.kubernetes_resource(), Some(("v1", "Node")));
    let a = compile("actions:\n  - log: {message: hi}\n").unwrap();
    assert_eq!(a.kubernetes_resource(), None);
}
