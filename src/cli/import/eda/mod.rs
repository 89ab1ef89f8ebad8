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
mod output;
mod position;
mod source;

use output::{commented_out, printable, problems, quote, single_line};
use position::{Positions, RulePositions};
use source::sources;

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
    /// `file:line:column: rule: what` lines for converted parts.
    pub converted: Vec<String>,
    /// `file:line:column: rule: what and why` lines for parts that did not convert, placed at
    /// the part in the rulebook (`file:plays[0].rules[1].condition` when the rulebook's shape
    /// hides the line).
    pub not_converted: Vec<String>,
    /// Where the part being converted is.
    at: String,
}

impl Report {
    fn converted(&mut self, rule: &str, what: String) {
        self.converted.push(format!("{}: {rule}: {what}", self.at));
    }
    fn not_converted(&mut self, rule: &str, what: String) {
        self.not_converted
            .push(format!("{}: {rule}: {what}", self.at));
    }
}

/// One play's context for its rules.
struct Play<'a> {
    name: &'a str,
    source: Source,
    /// The `select:` lines (with comments) its source becomes.
    select: Vec<String>,
    /// `default_events_ttl`.
    ttl: Option<&'a str>,
}

/// A rule's action entries: `action`, or the `actions` list.
fn actions_of(rule: &Value) -> Vec<&Value> {
    match (rule.get("action"), rule.get("actions")) {
        (Some(one), _) => vec![one],
        (None, Some(Value::Array(many))) => many.iter().collect(),
        _ => Vec::new(),
    }
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
    let positions = Positions::read(text, &file_name);
    let mut report = Report::default();
    let mut names = HashSet::new();
    let (mut valid, mut set_aside) = (String::new(), String::new());
    for (p, play) in plays.iter().enumerate() {
        let rules = play
            .get("rules")
            .and_then(Value::as_array)
            .ok_or_else(|| shape("a play has no `rules` list"))?;
        report.at = positions.play(p);
        let name = play.get("name").and_then(Value::as_str).unwrap_or("play");
        let (source, select) = sources(play, &mut report, name);
        let play = Play {
            name,
            source,
            select,
            ttl: play.get("default_events_ttl").and_then(Value::as_str),
        };
        for (r, rule) in rules.iter().enumerate() {
            let at = positions.rule(p, r, actions_of(rule).len());
            let (name, text) = convert_rule(rule, &play, &at, &mut names, &mut report);
            let text = printable(&text);
            // Checked alone, so that a rule Reflex refuses is set aside (and said so) instead
            // of making the whole file invalid.
            let problems = problems(&text);
            if problems.is_empty() {
                valid.push_str(&text);
            } else {
                report.at = at.rule;
                for problem in problems {
                    report.not_converted(
                        &name,
                        format!("the converted rule does not validate: {problem}"),
                    );
                }
                set_aside.push_str(&commented_out(&text));
            }
        }
    }
    let header = format!(
        "# Converted by `reflex import eda` from {}.\n# Review every TODO before enabling these rules.\n{}",
        single_line(
            &file
                .file_name()
                .map_or(file_name.clone(), |n| n.to_string_lossy().into_owned())
        ),
        if valid.is_empty() {
            "rules: []\n"
        } else {
            "rules:\n"
        }
    );
    // The set-aside rules go last: a long run of comments right after `rules:` is more than
    // the YAML parser looks ahead through (it would refuse the file).
    Ok((printable(&header) + &valid + &set_aside, report))
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

/// The rule's name in Reflex and its text (an item of `rules:`).
fn convert_rule(
    rule: &Value,
    play: &Play<'_>,
    at: &RulePositions,
    names: &mut HashSet<String>,
    report: &mut Report,
) -> (String, String) {
    let original = rule.get("name").and_then(Value::as_str).unwrap_or("rule");
    let name = rule_name(original, names);
    let mut lines = vec![
        format!("  - name: {name}"),
        format!(
            "    description: {}",
            quote(&format!(
                "ansible-rulebook rule `{original}` (play `{}`)",
                play.name
            ))
        ),
    ];
    let disabled = rule.get("enabled") == Some(&Value::Bool(false));
    if disabled {
        lines.push("    enabled: false".into());
    }
    lines.extend(play.select.iter().cloned());
    let failed_before = report.not_converted.len();
    report.at.clone_from(&at.condition);
    lines.extend(conditions(
        rule.get("condition"),
        &play.source,
        play.ttl,
        &name,
        report,
    ));
    if let Some(spec) = rule.get("throttle") {
        report.at.clone_from(&at.throttle);
        lines.extend(action::throttle(spec, &play.source, &name, report));
    }
    // A condition or throttle that did not convert would make the rule fire on events (or
    // as often as) the rulebook's never did: off until the operator fixed it.
    if report.not_converted.len() > failed_before && !disabled {
        lines.push("    # TODO: its condition or throttle did not convert (see the report); enable it once fixed".into());
        lines.push("    enabled: false".into());
    }
    lines.push("    actions:".into());
    let actions = actions_of(rule);
    if actions.is_empty() {
        report.at.clone_from(&at.rule);
        report.not_converted(&name, "no action".into());
    }
    for (entry, position) in actions.into_iter().zip(&at.actions) {
        report.at.clone_from(position);
        let Some((kind, args)) = entry.as_object().and_then(|m| m.iter().next()) else {
            report.not_converted(&name, format!("action `{entry}` is not `kind: {{...}}`"));
            continue;
        };
        lines.extend(action::convert(kind, args, &play.source, &name, report));
    }
    let mut out = String::new();
    for line in lines {
        let _ = writeln!(out, "{}", single_line(&line));
    }
    (name, out)
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
