//! `reflex import eda RULEBOOK`: an ansible-rulebook rulebook as a Reflex rules file, with a
//! summary of what converted and what did not (docs/rules.md, "Coming from Event-Driven Ansible").

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

use crate::rules::{LoadError, load_sources};

mod action;
mod condition;

/// Arguments of `reflex import eda`.
#[derive(Debug, clap::Args)]
pub struct EdaArgs {
    /// The ansible-rulebook rulebook (a YAML list of plays).
    pub rulebook: PathBuf,
    /// Write the rules file here instead of stdout (`-o` is `--format` on every other
    /// command, so the output file has its own letter).
    #[arg(
        long = "out",
        short = 'O',
        visible_alias = "output",
        value_name = "FILE"
    )]
    pub output: Option<PathBuf>,
    /// Exit 0 even when some parts could not be converted (they are still listed on stderr).
    #[arg(long)]
    pub allow_partial: bool,
}

/// Why a rulebook cannot be read at all (parts that do not convert are reported instead).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not YAML.
    #[error("{file}: not a YAML rulebook: {message}")]
    Yaml { file: String, message: String },
    /// YAML, but not a list of plays with `rules`.
    #[error("{file}: {message}; a rulebook is a list of plays, each with `sources` and `rules`")]
    Shape { file: String, message: String },
}

/// The event source of a play, which decides where the payload sits in ansible-rulebook's
/// `event` and what the rules select in Reflex.
#[derive(Debug, Clone)]
pub(super) enum Source {
    /// `ansible.eda.alertmanager`: `event.alert` is the alert; `event.meta.hosts` comes from
    /// `data_host_path` (default `labels.instance`).
    Alertmanager { host_path: String },
    /// `ansible.eda.webhook`: `event.payload` is the posted body.
    Webhook,
    /// `ansible.eda.kafka`: `event.body` is the message.
    Kafka { topics: Vec<String> },
    /// Anything else (`range`, `url_check`, `file_watch`…): kept as written.
    Other,
}

/// What converted and what did not, per rule.
#[derive(Debug, Default)]
pub struct Report {
    /// `rule: what` lines for converted parts.
    pub converted: Vec<String>,
    /// `rule: what and why` lines for parts that did not convert.
    pub not_converted: Vec<String>,
}

impl Report {
    fn converted(&mut self, rule: &str, what: String) {
        self.converted.push(format!("{rule}: {what}"));
    }
    fn not_converted(&mut self, rule: &str, what: String) {
        self.not_converted.push(format!("{rule}: {what}"));
    }
}

/// A string as a YAML double-quoted scalar (JSON's escapes are YAML's).
pub(super) fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// Converts, checks the result as `reflex validate` would, writes it and prints the summary.
/// Exit 0 when everything converted (or `--allow-partial`), 1 otherwise.
pub fn run(args: &EdaArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.rulebook)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", args.rulebook.display()))?;
    let (rules, mut report) = convert(&text, &args.rulebook)?;
    let name = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from("converted.yaml"));
    match load_sources(&[(name, rules.clone())]) {
        Ok(_) => {}
        Err(LoadError::Invalid(problems)) => {
            for p in problems {
                report
                    .not_converted
                    .push(format!("the output does not validate: {p}"));
            }
        }
        Err(other) => return Err(other.into()),
    }
    match &args.output {
        Some(path) => std::fs::write(path, &rules)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?,
        None => print!("{rules}"),
    }
    for line in &report.converted {
        eprintln!("converted: {line}");
    }
    for line in &report.not_converted {
        eprintln!("NOT converted: {line}");
    }
    eprintln!(
        "{}: {} part(s) converted, {} not converted{}",
        args.rulebook.display(),
        report.converted.len(),
        report.not_converted.len(),
        if report.not_converted.is_empty() {
            ""
        } else {
            " (see the TODO comments in the output)"
        }
    );
    Ok(if report.not_converted.is_empty() || args.allow_partial {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The Reflex rules file for a rulebook's text, and the report.
pub fn convert(text: &str, file: &Path) -> Result<(String, Report), Error> {
    let file_name = file.display().to_string();
    let shape = |message: &str| Error::Shape {
        file: file_name.clone(),
        message: message.to_owned(),
    };
    let plays: Value = serde_saphyr::from_str(text).map_err(|e| Error::Yaml {
        file: file_name.clone(),
        message: e.to_string(),
    })?;
    let plays = plays
        .as_array()
        .ok_or_else(|| shape("the document is not a list"))?;
    let mut out = format!(
        "# Converted by `reflex import eda` from {}.\n# Review every TODO before enabling these rules.\nrules:\n",
        file.file_name()
            .map_or(file_name.clone(), |n| n.to_string_lossy().into_owned())
    );
    let mut report = Report::default();
    let mut names = HashSet::new();
    for play in plays {
        let rules = play
            .get("rules")
            .and_then(Value::as_array)
            .ok_or_else(|| shape("a play has no `rules` list"))?;
        let play_name = play.get("name").and_then(Value::as_str).unwrap_or("play");
        let (source, select) = sources(play, &mut report, play_name);
        let ttl = play.get("default_events_ttl").and_then(Value::as_str);
        for rule in rules {
            out.push_str(&convert_rule(
                rule,
                play_name,
                &source,
                &select,
                ttl,
                &mut names,
                &mut report,
            ));
        }
    }
    Ok((out, report))
}

/// The play's source and the `select:` lines (with comments) it becomes.
fn sources(play: &Value, report: &mut Report, play_name: &str) -> (Source, Vec<String>) {
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

/// A rule name Reflex accepts (ASCII letters, digits, `-`, `_`, `.`), unique in the file.
fn rule_name(name: &str, names: &mut HashSet<String>) -> String {
    let mut slug: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    slug.truncate(100);
    if slug.is_empty() {
        slug = "rule".into();
    }
    let mut unique = slug.clone();
    let mut n = 2;
    while !names.insert(unique.clone()) {
        unique = format!("{slug}-{n}");
        n += 1;
    }
    unique
}

fn convert_rule(
    rule: &Value,
    play: &str,
    source: &Source,
    select: &[String],
    ttl: Option<&str>,
    names: &mut HashSet<String>,
    report: &mut Report,
) -> String {
    let original = rule.get("name").and_then(Value::as_str).unwrap_or("rule");
    let name = rule_name(original, names);
    let mut out = String::new();
    let _ = writeln!(out, "  - name: {name}");
    let _ = writeln!(
        out,
        "    description: {}",
        quote(&format!(
            "ansible-rulebook rule `{original}` (play `{play}`)"
        ))
    );
    if rule.get("enabled") == Some(&Value::Bool(false)) {
        out.push_str("    enabled: false\n");
    }
    for line in select {
        let _ = writeln!(out, "{line}");
    }
    for line in conditions(rule.get("condition"), source, ttl, &name, report) {
        let _ = writeln!(out, "{line}");
    }
    if let Some(spec) = rule.get("throttle") {
        for line in action::throttle(spec, source, &name, report) {
            let _ = writeln!(out, "{line}");
        }
    }
    let actions: Vec<&Value> = match (rule.get("action"), rule.get("actions")) {
        (Some(one), _) => vec![one],
        (None, Some(Value::Array(many))) => many.iter().collect(),
        _ => Vec::new(),
    };
    out.push_str("    actions:\n");
    if actions.is_empty() {
        report.not_converted(&name, "no action".into());
    }
    for entry in actions {
        let Some((kind, args)) = entry.as_object().and_then(|m| m.iter().next()) else {
            report.not_converted(&name, format!("action `{entry}` is not `kind: {{...}}`"));
            continue;
        };
        for line in action::convert(kind, args, source, &name, report) {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

/// The `when:` or `correlate:` lines for a rulebook condition.
fn conditions(
    spec: Option<&Value>,
    source: &Source,
    ttl: Option<&str>,
    rule: &str,
    report: &mut Report,
) -> Vec<String> {
    let one = |src: &str, report: &mut Report| match condition::convert(src, source) {
        Ok(expr) => Some(expr),
        Err(why) => {
            report.not_converted(rule, format!("condition `{src}`: {why}"));
            None
        }
    };
    let items = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let when = |expr: Option<String>| {
        expr.map(|e| vec![format!("    when: {}", quote(&e))])
            .unwrap_or_default()
    };
    match spec {
        None => Vec::new(),
        Some(Value::String(src)) => {
            let expr = one(src, report);
            if expr.is_some() {
                report.converted(rule, "condition → when".into());
            }
            when(expr)
        }
        Some(Value::Bool(b)) => when(Some(b.to_string())),
        Some(Value::Object(map)) if map.contains_key("any") => {
            let parts: Vec<Option<String>> = items(&map["any"])
                .iter()
                .map(|c| one(condition::split_assignment(c).1, report))
                .collect();
            report.converted(rule, "any → or".into());
            let parts: Option<Vec<String>> = parts.into_iter().collect();
            when(parts.map(|p| {
                p.iter()
                    .map(|e| format!("({e})"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            }))
        }
        Some(Value::Object(map)) if map.contains_key("all") => {
            let list = items(&map["all"]);
            if list.len() == 1 {
                return when(one(condition::split_assignment(&list[0]).1, report));
            }
            let timeout = map
                .get("timeout")
                .and_then(Value::as_str)
                .or(ttl)
                .unwrap_or("2 hours");
            let Some(within) = action::duration(timeout) else {
                report.not_converted(
                    rule,
                    format!("`all` timeout `{timeout}` is not `N seconds|minutes|hours|days`"),
                );
                return Vec::new();
            };
            let mut lines = vec![
                "    # ansible-rulebook's `all`: each condition met by its own event, within the window".into(),
                "    # (its timeout, else the events' time to live); one key for the rule, as in the rulebook".into(),
                "    correlate:".into(),
                format!("      key: {}", quote(rule)),
                format!("      within: {within}"),
                "      all:".into(),
            ];
            for (i, item) in list.iter().enumerate() {
                let (named, src) = condition::split_assignment(item);
                let Some(expr) = one(src, report) else {
                    continue;
                };
                let step = named.unwrap_or_else(|| format!("m_{i}"));
                lines.push(format!("        - name: {}", quote(&step)));
                lines.push(format!("          when: {}", quote(&expr)));
            }
            report.converted(
                rule,
                format!("all of {} conditions → correlate", list.len()),
            );
            lines
        }
        Some(other) => {
            report.not_converted(
                rule,
                format!("condition `{other}` (only a string, `all:` or `any:` converts)"),
            );
            Vec::new()
        }
    }
}
