//! A play's `sources`: which one it is decides where the payload sits in ansible-rulebook's
//! `event` and what the converted rules `select`.

use serde_json::Value;

use super::{Report, Source, quote};

/// The play's source and the `select:` lines (with comments) it becomes.
pub(super) fn sources(play: &Value, report: &mut Report, play_name: &str) -> (Source, Vec<String>) {
    let list = play
        .get("sources")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut found = Vec::new();
    for entry in &list {
        let Some((name, args)) = entry.as_object().and_then(|m| {
            m.iter()
                .find(|(k, _)| k.as_str() != "name" && k.as_str() != "filters")
        }) else {
            continue;
        };
        let short = name.trim_start_matches("ansible.eda.");
        let (source, lines) = match short {
            "alertmanager" => {
                let host_path = args
                    .get("data_host_path")
                    .and_then(Value::as_str)
                    .unwrap_or("labels.instance")
                    .to_owned();
                (
                    Source::Alertmanager { host_path },
                    vec![
                        "    # from ansible.eda.alertmanager: point Alertmanager at Reflex's /v1/alertmanager".into(),
                        "    select:".into(),
                        "      formats: [alertmanager]".into(),
                        "      alert_status: any   # ansible-rulebook sees resolved alerts too".into(),
                    ],
                )
            }
            "kafka" => {
                let topics: Vec<String> = match (args.get("topic"), args.get("topics")) {
                    (Some(Value::String(t)), _) => vec![t.clone()],
                    (_, Some(Value::Array(ts))) => ts.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
                    _ => Vec::new(),
                };
                let list: Vec<String> = topics.iter().map(|t| quote(t)).collect();
                (
                    Source::Kafka { topics },
                    vec![
                        "    # from ansible.eda.kafka: Reflex reads the topic itself".into(),
                        "    select:".into(),
                        format!("      topics: [{}]", list.join(", ")),
                    ],
                )
            }
            "webhook" => (
                Source::Webhook,
                vec!["    # from ansible.eda.webhook: POST the body to Reflex's /v1/events (CloudEvents binary mode: ce-* headers, the body as data)".into()],
            ),
            other => (
                Source::Other,
                vec![format!("    # from source {name}: no Reflex equivalent; publish its events to a Kafka topic Reflex reads ({other})")],
            ),
        };
        found.push((source, lines));
    }
    match found.len() {
        0 => (Source::Other, Vec::new()),
        1 => found.remove(0),
        _ => {
            report.converted(
                play_name,
                "several sources: no `select`, the rules see every event".into(),
            );
            let mut lines =
                vec!["    # the play had several sources; each rule sees every event".to_owned()];
            lines.extend(
                found
                    .into_iter()
                    .flat_map(|(_, l)| l)
                    .filter(|l| l.trim_start().starts_with('#')),
            );
            (Source::Other, lines)
        }
    }
}
