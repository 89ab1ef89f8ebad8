//! Model → compiled rule: checks names, selectors and switches here, and delegates conditions,
//! stateful behaviour and actions to their modules, all pushing into one [`Diagnostics`].

use std::collections::HashMap;
use std::path::PathBuf;

use super::action::CompiledAction;
use super::condition::Condition;
use super::diagnostic::Diagnostics;
use super::model::{self, RuleFile};
use super::ruleset::{Glob, Rule, RuleGuard, Selector};
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
    let guard = compile_guard(rule.guard.as_ref(), diags);
    let remediation = super::remediation::Plan::compile(rule, diags);
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
        shadow: rule.mode == model::RuleMode::Shadow,
        priority: rule.priority,
        stop: rule.stop,
        selector,
        condition,
        behaviour: behaviour?,
        actions,
        max_keys: rule.max_keys.unwrap_or(DEFAULT_MAX_KEYS),
        guard,
        remediation: remediation?,
    })
}

/// Compiles name patterns; an empty one is an error naming `what` (topic, type, namespace).
fn compile_globs(items: &[model::SpannedString], what: &str, diags: &mut Diagnostics) -> Vec<Glob> {
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
}

/// Compiles `guard:`; pushes an error for empty globs, zero limits and bad durations.
fn compile_guard(guard: Option<&model::RuleGuard>, diags: &mut Diagnostics) -> RuleGuard {
    let Some(guard) = guard else {
        return RuleGuard::default();
    };
    let allow_namespaces = compile_globs(&guard.namespaces.allow, "namespace", diags);
    let deny_namespaces = compile_globs(&guard.namespaces.deny, "namespace", diags);
    let mut limit = |value: &Option<model::Spanned<u32>>, field: &str| {
        let value = value.as_ref()?;
        if value.value == 0 {
            diags.error(
                value.referenced,
                format!("`guard.{field}` must be at least 1"),
                Some(
                    "leave it out for the global limit; `dry_run: true` stops the rule's actions"
                        .into(),
                ),
            );
        }
        Some(value.value)
    };
    let max_per_rule = limit(&guard.max_per_rule, "max_per_rule");
    let max_per_target = limit(&guard.max_per_target, "max_per_target");
    let mut duration = |text: &Option<model::SpannedString>| {
        let text = text.as_ref()?;
        let parsed = super::duration::compile(text, diags)?;
        match parsed.to_std() {
            Ok(d) if !d.is_zero() => Some(d),
            _ => {
                diags.error(
                    text.referenced,
                    "the duration must be above zero",
                    Some("e.g. `10m`".into()),
                );
                None
            }
        }
    };
    let window = duration(&guard.window);
    let cool_down = duration(&guard.cool_down);
    RuleGuard {
        allow_namespaces,
        deny_namespaces,
        max_per_rule,
        max_per_target,
        window,
        cool_down,
    }
}

fn compile_selector(selector: &model::Selector, diags: &mut Diagnostics) -> Selector {
    let topics = compile_globs(&selector.topics, "topic", diags);
    let types = compile_globs(&selector.types, "type", diags);
    Selector {
        topics,
        formats: selector.formats.clone(),
        types,
        alert_status: selector.alert_status,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::rules::LoadError;

    fn load(yaml: &str) -> Result<crate::rules::RuleSet, LoadError> {
        crate::rules::load_sources(&[(PathBuf::from("guard.yaml"), yaml.to_owned())])
    }

    #[test]
    fn a_rule_guard_compiles_into_globs_limits_and_durations() {
        let set = load(
            "rules:\n  - name: r\n    guard:\n      namespaces: {allow: ['team-*'], deny: [team-x]}\n      \
             max_per_rule: 4\n      window: 30m\n      cool_down: 1h\n    actions: [{log: {message: m}}]\n",
        )
        .expect("valid");
        let guard = &set.get("r").expect("rule").guard;
        assert!(guard.allow_namespaces[0].matches("team-a"));
        assert_eq!(guard.deny_namespaces[0].as_str(), "team-x");
        assert_eq!(guard.max_per_rule, Some(4));
        assert_eq!(guard.max_per_target, None);
        assert_eq!(guard.window.map(|d| d.as_secs()), Some(1800));
        assert_eq!(guard.cool_down.map(|d| d.as_secs()), Some(3600));
    }

    #[test]
    fn every_bad_guard_value_is_reported_with_its_line() {
        let err = load(
            "rules:\n  - name: r\n    guard:\n      namespaces: {deny: ['']}\n      \
             max_per_target: 0\n      window: 0s\n    actions: [{log: {message: m}}]\n",
        )
        .expect_err("invalid");
        let LoadError::Invalid(diags) = err else {
            panic!("expected diagnostics, got {err}");
        };
        let lines: Vec<(u64, &str)> = diags.iter().map(|d| (d.line, d.message.as_str())).collect();
        assert!(lines.contains(&(4, "empty namespace name")), "{lines:?}");
        assert!(
            lines.contains(&(5, "`guard.max_per_target` must be at least 1")),
            "{lines:?}"
        );
        assert!(
            lines.contains(&(6, "the duration must be above zero")),
            "{lines:?}"
        );
    }
}
