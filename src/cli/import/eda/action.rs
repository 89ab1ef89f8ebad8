//! ansible-rulebook actions and throttles as Reflex ones: the automation controller's launch
//! API as a `webhook`, `post_event` as a `kafka` record, `debug`/`print_event` as `log`; what
//! runs Ansible in-process or keeps facts has no equivalent and becomes a `log` stand-in.

use serde_json::{Map, Value, json};

use super::condition::rewrite_paths;
use super::{Report, Source, quote};

/// Where the converted actions point to reach the automation controller; documented
/// placeholders the operator replaces (docs/rules.md, "Coming from Event-Driven Ansible").
const CONTROLLER_URL: &str = "https://aap.example.org/api/controller/v2";
/// The environment variable holding the controller's `Authorization` header value.
const CONTROLLER_TOKEN_ENV: &str = "AAP_AUTHORIZATION";
/// The topic `post_event` records go to when the play's source names none.
const POSTED_EVENTS_TOPIC: &str = "eda-posted-events";

/// The action lines (indented for a rule's `actions:` list) for one rulebook action.
pub(super) fn convert(
    kind: &str,
    args: &Value,
    source: &Source,
    rule: &str,
    report: &mut Report,
) -> Vec<String> {
    let arg = |name: &str| args.get(name).and_then(Value::as_str).unwrap_or("");
    match kind {
        "run_job_template" | "run_workflow_template" => {
            let (path, id) = if kind == "run_job_template" {
                ("job_templates", "JOB_TEMPLATE_ID")
            } else {
                ("workflow_job_templates", "WORKFLOW_TEMPLATE_ID")
            };
            let extra_vars = args
                .get("job_args")
                .and_then(|a| a.get("extra_vars"))
                .map_or_else(|| json!({}), |v| templates(v, source));
            report.converted(rule, format!("{kind} `{}` → webhook", arg("name")));
            vec![
                "      - webhook:".into(),
                format!(
                    "          # TODO: replace aap.example.org and {id} with your controller and the id of {} `{}` (organization `{}`); {CONTROLLER_TOKEN_ENV} holds `Bearer <token>`.",
                    path.replace('_', " ").trim_end_matches('s'),
                    arg("name"),
                    arg("organization"),
                ),
                format!(
                    "          url: {}",
                    quote(&format!("{CONTROLLER_URL}/{path}/{id}/launch/"))
                ),
                "          secret_headers:".into(),
                format!("            Authorization: {{env: {CONTROLLER_TOKEN_ENV}}}"),
                format!("          body: {}", json!({"extra_vars": extra_vars})),
            ]
        }
        "post_event" => {
            let (topic, todo) = match source {
                Source::Kafka { topics } if !topics.is_empty() => (topics[0].clone(), None),
                _ => (
                    POSTED_EVENTS_TOPIC.to_owned(),
                    Some("          # TODO: the topic your rules read posted events from"),
                ),
            };
            report.converted(rule, format!("post_event → kafka topic `{topic}`"));
            let event = args
                .get("event")
                .map_or_else(|| json!({}), |v| templates(v, source));
            let mut lines = vec!["      - kafka:".to_owned()];
            lines.extend(todo.map(str::to_owned));
            lines.push(format!("          topic: {}", quote(&topic)));
            lines.push(format!("          value: {event}"));
            lines
        }
        "debug" | "print_event" => {
            let message = match args.get("msg") {
                Some(Value::String(s)) => rewrite_paths(s, source),
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|s| rewrite_paths(s, source))
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => format!("{kind} from rule {{{{ rule.name }}}}"),
            };
            report.converted(rule, format!("{kind} → log"));
            vec![
                "      - log:".into(),
                format!("          message: {}", quote(&message)),
                "          fields: {event: \"{{ event }}\"}".into(),
            ]
        }
        other => {
            let why = match other {
                "run_playbook" | "run_module" => {
                    "runs Ansible in-process; Reflex has no Ansible runner: launch it through a job template (webhook) or a Kubernetes Job (create)"
                }
                "set_fact" | "retract_fact" => "keeps facts; Reflex has no fact store",
                _ => "has no Reflex equivalent",
            };
            let what = match arg("name") {
                "" => other.to_owned(),
                name => format!("{other} `{name}`"),
            };
            report.not_converted(rule, format!("{what} {why}"));
            vec![
                format!("      # TODO: not converted from ansible-rulebook: {what} {why}."),
                "      - log:".into(),
                format!(
                    "          message: {}",
                    quote(&format!("TODO: not converted: {what}"))
                ),
                "          level: warn".into(),
            ]
        }
    }
}

/// A free-form value whose template strings lose the source's payload wrapper.
fn templates(value: &Value, source: &Source) -> Value {
    match value {
        Value::String(s) => Value::String(rewrite_paths(s, source)),
        Value::Array(items) => items.iter().map(|v| templates(v, source)).collect(),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), templates(v, source)))
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

/// `5 minutes`, `10 seconds`, `1 hour`, `2 days` as a Reflex duration (`5m`, `10s`, `1h`, `48h`).
pub(super) fn duration(text: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    let n: u64 = words.next()?.parse().ok()?;
    let unit = words.next()?.trim_end_matches('s');
    if words.next().is_some() {
        return None;
    }
    match unit {
        "second" | "sec" => Some(format!("{n}s")),
        "minute" | "min" => Some(format!("{n}m")),
        "hour" => Some(format!("{n}h")),
        "day" => Some(format!("{}h", n * 24)),
        _ => None,
    }
}

/// The `throttle:` / `threshold:` lines for an ansible-rulebook `throttle`.
pub(super) fn throttle(
    spec: &Value,
    source: &Source,
    rule: &str,
    report: &mut Report,
) -> Vec<String> {
    let attrs: Vec<String> = spec
        .get("group_by_attributes")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|p| format!("{{{{ {} }}}}", rewrite_paths(p, source)))
                .collect()
        })
        .unwrap_or_default();
    let key = (!attrs.is_empty()).then(|| format!("      key: {}", quote(&attrs.join("/"))));
    let window = |name: &str| spec.get(name).and_then(Value::as_str);
    let mut lines = Vec::new();
    let push_window = |lines: &mut Vec<String>, field: &str, text: &str, report: &mut Report| {
        match duration(text) {
            Some(d) => lines.push(format!("      {field}: {d}")),
            None => report.not_converted(
                rule,
                format!("throttle window `{text}` is not `N seconds|minutes|hours|days`"),
            ),
        }
    };
    if let (Some(within), Some(count)) = (window("accumulate_within"), spec.get("threshold")) {
        lines.push("    threshold:".into());
        lines.extend(key);
        lines.push(format!("      count: {count}"));
        push_window(&mut lines, "within", within, report);
        report.converted(rule, "throttle accumulate_within → threshold".into());
    } else if let Some(once) = window("once_within")
        .map(|w| ("once_within", w))
        .or_else(|| window("once_after").map(|w| ("once_after", w)))
    {
        lines.push("    throttle:".into());
        lines.extend(key);
        push_window(&mut lines, once.0, once.1, report);
        report.converted(rule, format!("throttle {} → throttle", once.0));
    } else {
        report.not_converted(
            rule,
            "throttle without once_within, once_after or accumulate_within".into(),
        );
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rulebook_durations_become_reflex_durations() {
        assert_eq!(duration("5 minutes").as_deref(), Some("5m"));
        assert_eq!(duration("1 hour").as_deref(), Some("1h"));
        assert_eq!(duration("10 seconds").as_deref(), Some("10s"));
        assert_eq!(duration("2 days").as_deref(), Some("48h"));
        assert_eq!(duration("soon"), None);
        assert_eq!(duration("5 fortnights"), None);
    }
}
