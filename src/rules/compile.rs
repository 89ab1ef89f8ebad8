//! Model → compiled rule: checks names, selectors and switches here, and delegates conditions,
//! stateful behaviour and actions to their modules, all pushing into one [`Diagnostics`].

use std::collections::HashMap;
use std::path::PathBuf;

use super::action::CompiledAction;
use super::condition::Condition;
use super::diagnostic::Diagnostics;
use super::model::{self, RuleFile};
use super::ruleset::{Glob, Rule, Selector};
use super::state::Behaviour;

/// Keys kept per stateful rule when the rule does not say. Enough for every namespace/deployment
/// pair of a large cluster, small enough that a key template gone wrong (an event id as key)
/// cannot eat the process's memory: the oldest keys are evicted and counted instead.
pub const DEFAULT_MAX_KEYS: usize = 10_000;

/// Longest rule name: it ends up in metric labels, outcome rows and idempotency keys.
const MAX_NAME_LEN: usize = 128;

/// Compiles every parsed file's rules, checking names across files.
pub fn compile_rules(files: &[(PathBuf, RuleFile)], diags: &mut Diagnostics) -> Vec<Rule> {
    let mut seen: HashMap<String, (PathBuf, u64)> = HashMap::new();
    let mut rules = Vec::new();
    for (path, file) in files {
        diags.set_file(path);
        for rule in &file.rules {
            let name = rule.name.value.clone();
            diags.set_rule(Some(&name));
            check_name(rule, diags);
            let line = rule.name.referenced.line();
            if let Some((other, other_line)) = seen.get(&name) {
                diags.error(
                    rule.name.referenced,
                    format!("duplicate rule name `{name}`"),
                    Some(format!(
                        "already defined at {}:{other_line}; rule names must be unique across the rules directory",
                        other.display()
                    )),
                );
            } else {
                seen.insert(name.clone(), (path.clone(), line));
            }
            if let Some(compiled) = compile_rule(path, rule, diags) {
                rules.push(compiled);
            }
        }
    }
    rules
}

fn check_name(rule: &model::Rule, diags: &mut Diagnostics) {
    let name = &rule.name.value;
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        diags.error(
            rule.name.referenced,
            format!("invalid rule name `{name}`"),
            Some(format!(
                "use 1 to {MAX_NAME_LEN} ASCII letters, digits, `-`, `_` or `.` (the name appears in metrics and idempotency keys)"
            )),
        );
    }
}

fn compile_rule(
    path: &std::path::Path,
    rule: &model::Rule,
    diags: &mut Diagnostics,
) -> Option<Rule> {
    let before = diags.len();
    let selector = compile_selector(&rule.selector, diags);

    let mut parts = Vec::new();
    if let Some(when) = &rule.when {
        parts.extend(Condition::compile_expr(when, diags));
    }
    if let Some(tree) = &rule.condition {
        parts.extend(Condition::compile(tree, diags));
    }
    let condition = match parts.len() {
        0 => None,
        1 => parts.pop(),
        _ => Some(Condition::all(parts)),
    };

    let behaviour = Behaviour::compile(rule, diags);
    let actions: Vec<CompiledAction> = rule
        .actions
        .iter()
        .filter_map(|spec| CompiledAction::compile(spec, diags))
        .collect();
    if rule.actions.is_empty() {
        diags.error(
            rule.name.referenced,
            "the rule has no actions",
            Some(
                "add an `actions:` list (use `- log: {message: ...}` to only record matches)"
                    .into(),
            ),
        );
    }
    if rule.max_keys == Some(0) {
        diags.error(
            rule.name.referenced,
            "`max_keys` must be at least 1",
            Some(format!(
                "leave it out for the default of {DEFAULT_MAX_KEYS}"
            )),
        );
    }
    if diags.len() > before {
        return None;
    }
    Some(Rule {
        name: rule.name.value.clone(),
        description: rule.description.clone(),
        file: path.to_path_buf(),
        line: rule.name.referenced.line(),
        enabled: rule.enabled,
        dry_run: rule.dry_run,
        priority: rule.priority,
        stop: rule.stop,
        selector,
        condition,
        behaviour: behaviour?,
        actions,
        max_keys: rule.max_keys.unwrap_or(DEFAULT_MAX_KEYS),
    })
}

fn compile_selector(selector: &model::Selector, diags: &mut Diagnostics) -> Selector {
    let mut globs = |items: &[model::SpannedString], what: &str| -> Vec<Glob> {
        items
            .iter()
            .filter_map(|s| {
                if s.value.is_empty() {
                    diags.error(
                        s.referenced,
                        format!("empty {what} name"),
                        Some("remove the entry, or write a name or a `*` pattern".into()),
                    );
                    None
                } else {
                    Some(Glob::new(&s.value))
                }
            })
            .collect()
    };
    let topics = globs(&selector.topics, "topic");
    let types = globs(&selector.types, "type");
    Selector {
        topics,
        formats: selector.formats.clone(),
        types,
        alert_status: selector.alert_status,
    }
}
