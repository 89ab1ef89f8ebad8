//! The namespace policy: which namespaces Kubernetes actions may touch.
//!
//! An action passes when (1) no deny glob matches (global or the rule's), (2) the global allow
//! list is empty or matches, (3) the rule's allow list is empty or matches, and (4) the
//! namespace is not protected — `kube-system` and Reflex's own — unless an allow entry names
//! it literally (a glob such as `kube-*` or `team-*` never reaches it by accident). A rule can
//! therefore narrow the global policy but never widen it, and a protected namespace is only
//! reachable on purpose. The same verdict applies to a `Namespace` object under its name (see
//! [`super::scope`]): a namespace the policy protects cannot be deleted, labelled or patched
//! either.

use crate::config::NamespaceLists;
use crate::rules::ruleset::{Glob, RuleGuard};

/// Namespaces refused unless explicitly allowed, besides Reflex's own.
const PROTECTED: [&str; 1] = ["kube-system"];

/// The global policy, compiled once.
#[derive(Debug, Clone)]
pub struct NamespacePolicy {
    allow: Vec<Glob>,
    deny: Vec<Glob>,
    protected: Vec<String>,
}

impl NamespacePolicy {
    /// Compiles the global lists; `own_namespace` (Reflex's namespace) becomes protected.
    pub fn new(lists: &NamespaceLists, own_namespace: Option<&str>) -> Self {
        let globs = |items: &[String]| items.iter().map(|g| Glob::new(g)).collect();
        let mut protected: Vec<String> = PROTECTED.iter().map(|s| (*s).to_owned()).collect();
        if let Some(own) = own_namespace.map(str::trim).filter(|ns| !ns.is_empty())
            && !protected.iter().any(|p| p == own)
        {
            protected.push(own.to_owned());
        }
        Self {
            allow: globs(&lists.allow),
            deny: globs(&lists.deny),
            protected,
        }
    }

    /// Whether an action of `rule` may touch `namespace`; the error says which setting refused
    /// it and how to change that.
    pub fn check(&self, namespace: &str, rule: &str, guard: &RuleGuard) -> Result<(), String> {
        let matching = |globs: &[Glob]| {
            globs
                .iter()
                .find(|g| g.matches(namespace))
                .map(|g| g.as_str().to_owned())
        };
        if let Some(glob) = matching(&self.deny) {
            return Err(format!(
                "namespace `{namespace}` is denied by `{glob}` in actions.namespaces.deny; rule \
                 `{rule}` may not act there (remove the entry from the configuration to allow it)"
            ));
        }
        if let Some(glob) = matching(&guard.deny_namespaces) {
            return Err(format!(
                "namespace `{namespace}` is denied by `{glob}` in guard.namespaces.deny of rule \
                 `{rule}` (remove the entry from the rule to allow it)"
            ));
        }
        if !self.allow.is_empty() && matching(&self.allow).is_none() {
            return Err(format!(
                "namespace `{namespace}` is not in actions.namespaces.allow ({}); rule `{rule}` \
                 may not act there (add it to that list in the configuration)",
                list(&self.allow)
            ));
        }
        if !guard.allow_namespaces.is_empty() && matching(&guard.allow_namespaces).is_none() {
            return Err(format!(
                "namespace `{namespace}` is not in guard.namespaces.allow of rule `{rule}` ({}); \
                 add it to the rule's list",
                list(&guard.allow_namespaces)
            ));
        }
        if self.protected.iter().any(|p| p == namespace) {
            let explicit = |globs: &[Glob]| globs.iter().any(|g| g.exact() == Some(namespace));
            if !explicit(&self.allow) && !explicit(&guard.allow_namespaces) {
                return Err(format!(
                    "namespace `{namespace}` is protected (kube-system and Reflex's own \
                     namespace are refused unless an allow list names them literally); rule `{rule}` may not act \
                     there — add `{namespace}` to actions.namespaces.allow or to the rule's \
                     guard.namespaces.allow if this is intended"
                ));
            }
        }
        Ok(())
    }
}

fn list(globs: &[Glob]) -> String {
    globs
        .iter()
        .map(|g| format!("`{}`", g.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str], deny: &[&str], own: Option<&str>) -> NamespacePolicy {
        let owned = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect();
        NamespacePolicy::new(
            &NamespaceLists {
                allow: owned(allow),
                deny: owned(deny),
            },
            own,
        )
    }

    fn rule_guard(allow: &[&str], deny: &[&str]) -> RuleGuard {
        RuleGuard {
            allow_namespaces: allow.iter().map(|g| Glob::new(g)).collect(),
            deny_namespaces: deny.iter().map(|g| Glob::new(g)).collect(),
            ..RuleGuard::default()
        }
    }

    #[test]
    fn kube_system_and_the_own_namespace_are_refused_by_default() {
        let policy = policy(&[], &[], Some("reflex"));
        let none = RuleGuard::default();
        let err = policy
            .check("kube-system", "r", &none)
            .expect_err("protected");
        assert!(err.contains("protected"), "{err}");
        assert!(err.contains("actions.namespaces.allow"), "{err}");
        assert!(err.contains("rule `r`"), "{err}");
        assert!(policy.check("reflex", "r", &none).is_err());
        assert!(policy.check("shop", "r", &none).is_ok());
    }

    #[test]
    fn a_protected_namespace_must_be_allowed_by_its_literal_name() {
        let none = RuleGuard::default();
        let refused = |allow: &[&str], own: Option<&str>, ns: &str| {
            policy(allow, &[], own).check(ns, "r", &none).is_err()
        };
        assert!(refused(&["*"], None, "kube-system"));
        assert!(refused(&["kube-*"], None, "kube-system"));
        assert!(!refused(&["kube-*", "kube-system"], None, "kube-system"));
        assert!(
            refused(&["team-*"], Some("team-ops"), "team-ops"),
            "a glob does not reach the own namespace"
        );
        let by_rule = rule_guard(&["kube-system"], &[]);
        assert!(
            policy(&[], &[], None)
                .check("kube-system", "r", &by_rule)
                .is_ok()
        );
    }

    #[test]
    fn a_deny_glob_wins_over_an_allow_glob() {
        let policy = policy(&["team-*"], &["team-prod*"], None);
        let none = RuleGuard::default();
        assert!(policy.check("team-dev", "r", &none).is_ok());
        let err = policy
            .check("team-prod-eu", "r", &none)
            .expect_err("denied");
        assert!(
            err.contains("`team-prod*` in actions.namespaces.deny"),
            "{err}"
        );
        let err = policy.check("shop", "r", &none).expect_err("not allowed");
        assert!(
            err.contains("not in actions.namespaces.allow (`team-*`)"),
            "{err}"
        );
    }

    #[test]
    fn a_rule_can_narrow_the_global_policy_but_not_widen_it() {
        let policy = policy(&["team-*"], &[], None);
        let narrow = rule_guard(&["team-a"], &[]);
        assert!(policy.check("team-a", "r", &narrow).is_ok());
        let err = policy.check("team-b", "r", &narrow).expect_err("narrowed");
        assert!(err.contains("guard.namespaces.allow of rule `r`"), "{err}");
        let wide = rule_guard(&["shop"], &[]);
        assert!(policy.check("shop", "r", &wide).is_err());
        let deny = rule_guard(&[], &["team-b"]);
        let err = policy.check("team-b", "r", &deny).expect_err("rule deny");
        assert!(err.contains("guard.namespaces.deny of rule `r`"), "{err}");
    }
}
