//! `reflex rbac DIR`: the least-privilege RBAC the rules' Kubernetes actions need, as a
//! ClusterRole, or as one Role per namespace when every namespaced target names its namespace
//! literally. For the Helm chart and for reviewers.
//!
//! What each action needs (what the executor in `crate::actions::kubernetes` calls; the table
//! itself is [`ActionKind::api_access`], next to the action kinds):
//!
//! | action | verbs | resource |
//! |---|---|---|
//! | scale | get, patch | `<plural>/scale` |
//! | restart, set_image, label, annotate | get, patch | `<plural>` |
//! | rollback | get, patch; list | the workload; `replicasets` (Deployment) or `controllerrevisions` |
//! | patch | patch | `<plural>` |
//! | delete | delete (+ get for Pods: the bare-pod check) | `<plural>` |
//! | create | create | `<plural>` |
//! | cordon, uncordon | get, patch | `nodes` |
//! | every one of them | create | `events` (API group `events.k8s.io`) in the object's namespace, `default` for cluster-scoped objects |
//!
//! The last line is the Kubernetes Event about each action (`kubernetes.events`, on by
//! default): each action gets its own Event, so `patch` (which kube's recorder uses to count
//! repeats into one Event) is never needed.
//!
//! Closed-loop rules need the same for their `escalate` steps' actions, and `get` on the object
//! a `verify.kubernetes` check reads (its `target`, else the step's first Kubernetes object).
//! Undoing a temporary fix (`undo`) re-reads the object (`get` on its own resource: for a
//! `scale`, more than the `scale` subresource) and reverts with the action's own verbs.
//!
//! Discovery (`/api`, `/apis`) needs no grant: Kubernetes' `system:discovery` role gives it to
//! every authenticated identity.
//!
//! Resource names come from the kind without asking a cluster: a table of the common kinds, and
//! for other kinds the usual English plural of the lower-cased kind (`-s`; `-es` after s, x, z,
//! ch, sh; `-ies` after a consonant + y), which is what CustomResourceDefinitions use unless
//! they declare another plural. A CRD with an irregular plural needs a hand edit.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::ValueEnum;
use serde::Serialize;
use serde_json::{Value, json};

use crate::rules::action::access::AccessResource;
use crate::rules::action::{ActionKind, ActionSpec, CompiledAction, TargetSpec};
use crate::rules::diagnostic::Diagnostics;
use crate::rules::load::{find_files, is_rule_file, parse_yaml, read_source};
use crate::rules::model::{Rule, RuleFile, SpannedString};
use crate::rules::remediation::KubeCheck;
use crate::rules::remediation::spec::KubernetesCheckSpec;
use crate::rules::{LoadError, load_dir};

/// Output format of `reflex rbac`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum RbacFormat {
    /// YAML documents separated by `---`, ready for `kubectl apply -f -`.
    #[default]
    Yaml,
    /// One JSON `v1 List` holding the objects.
    Json,
}

/// Arguments of `reflex rbac`.
#[derive(Debug, clap::Args)]
pub struct RbacArgs {
    /// Rules directory (searched recursively for `*.yaml`/`*.yml`) or a single rules file.
    #[arg(default_value = "rules")]
    pub dir: PathBuf,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = RbacFormat::Yaml)]
    pub format: RbacFormat,
    /// Name of the ClusterRole and of each Role.
    #[arg(long, default_value = "reflex")]
    pub name: String,
}

/// Where the objects an action touches live.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// A cluster-scoped kind (Node, Namespace, ClusterRole, ...).
    Cluster,
    /// One namespace, written literally in the rule.
    Namespace(String),
    /// A namespace rendered from the event: any namespace.
    AnyNamespace,
}

/// One permission an action needs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    /// API group (`""` for the core group).
    pub group: String,
    /// Resource, with subresource (`deployments/scale`).
    pub resource: String,
    /// RBAC verb.
    pub verb: &'static str,
    /// Where.
    pub scope: Scope,
}

/// Every permission the rules under `dir` need, sorted and without duplicates: their actions,
/// their escalation steps' actions, and `get` on the objects their `verify.kubernetes` checks
/// read. Fails like `reflex validate` when a rule is invalid.
pub fn grants(dir: &Path) -> Result<BTreeSet<Grant>, LoadError> {
    let compiled = load_dir(dir)?;
    // The compiled actions know the resolved kinds (defaults applied); the YAML model knows
    // whether a namespace is written literally. Both list a rule's actions in the same order.
    let mut specs: BTreeMap<String, Rule> = BTreeMap::new();
    for path in find_files(dir, is_rule_file)? {
        let text = read_source(&path)?;
        let mut diags = Diagnostics::new();
        diags.set_file(&path);
        if let Some(file) = parse_yaml::<RuleFile>(&text, &mut diags) {
            for rule in file.rules {
                specs.insert(rule.name.value.clone(), rule);
            }
        }
    }
    let mut out = BTreeSet::new();
    for rule in compiled.rules() {
        let Some(spec) = specs.get(&rule.name) else {
            continue;
        };
        let plan = rule.remediation.as_ref();
        // Step 0 is the rule's `actions`, steps 1.. its `escalate` (same order in both forms).
        let mut steps = vec![(&rule.actions, &spec.actions, spec.verify.as_ref())];
        if let Some(plan) = plan {
            for (step, step_spec) in plan.escalate.iter().zip(&spec.escalate) {
                steps.push((&step.actions, &step_spec.actions, step_spec.verify.as_ref()));
            }
        }
        for (index, (actions, action_specs, verify_spec)) in steps.into_iter().enumerate() {
            for (action, spec) in actions.iter().zip(action_specs) {
                let Some((api_version, kind)) = action.kubernetes_resource() else {
                    continue;
                };
                out.extend(action_grants(
                    action.kind,
                    api_version,
                    kind,
                    scope_of(spec),
                ));
            }
            if index == 0 && plan.is_some_and(|p| p.undo.is_some()) {
                out.extend(undo_grants(actions, action_specs));
            }
            let check = plan
                .and_then(|p| p.verify_of(index))
                .and_then(|v| v.kubernetes.as_ref());
            let check_spec = verify_spec.and_then(|v| v.kubernetes.as_ref());
            if let (Some(check), Some(check_spec)) = (check, check_spec) {
                out.extend(verify_grant(check, check_spec, actions, action_specs));
            }
        }
    }
    Ok(out)
}

/// `get` on the object a `verify.kubernetes` check reads: its own `target`, else the first
/// object a Kubernetes action of the step names (the driver's default; never one it creates).
fn verify_grant(
    check: &KubeCheck,
    spec: &KubernetesCheckSpec,
    actions: &[CompiledAction],
    action_specs: &[ActionSpec],
) -> Option<Grant> {
    let (api_version, kind, scope) = match (&check.target, &spec.target) {
        (Some(target), Some(target_spec)) => {
            let (api_version, kind) = target.resource();
            (api_version, kind, target_scope(target_spec))
        }
        _ => actions
            .iter()
            .zip(action_specs)
            .filter(|(action, _)| action.kind != ActionKind::Create)
            .find_map(|(action, spec)| {
                let (api_version, kind) = action.kubernetes_resource()?;
                Some((api_version, kind, scope_of(spec)))
            })?,
    };
    Some(get_object(api_version, kind, scope))
}

/// `get` on the objects an `undo` re-reads before reverting (the executor reads the object
/// itself, so a `scale` that is undone needs `get` on `deployments`, not only on
/// `deployments/scale`); the revert itself uses the action's own verbs.
fn undo_grants(actions: &[CompiledAction], action_specs: &[ActionSpec]) -> Vec<Grant> {
    actions
        .iter()
        .zip(action_specs)
        .filter(|(action, _)| {
            matches!(
                action.kind,
                ActionKind::Scale | ActionKind::Cordon | ActionKind::Label | ActionKind::Annotate
            )
        })
        .filter_map(|(action, spec)| {
            let (api_version, kind) = action.kubernetes_resource()?;
            Some(get_object(api_version, kind, scope_of(spec)))
        })
        .collect()
}

/// `get` on objects of `api_version`/`kind` (the object itself, no subresource).
fn get_object(api_version: &str, kind: &str, scope: Scope) -> Grant {
    let group = api_version
        .split_once('/')
        .map_or("", |(group, _)| group)
        .to_owned();
    Grant {
        group,
        resource: plural(kind),
        verb: "get",
        scope,
    }
}

/// The permissions one action needs.
pub fn action_grants(
    action: ActionKind,
    api_version: &str,
    kind: &str,
    scope: Scope,
) -> Vec<Grant> {
    let group = api_version
        .split_once('/')
        .map_or("", |(group, _)| group)
        .to_owned();
    let plural = plural(kind);
    let grant = |group: &str, resource: &str, verb: &'static str, scope: &Scope| Grant {
        group: group.to_owned(),
        resource: resource.to_owned(),
        verb,
        scope: scope.clone(),
    };
    let on = |resource: &str, verbs: &[&'static str]| -> Vec<Grant> {
        verbs
            .iter()
            .map(|verb| grant(&group, resource, verb, &scope))
            .collect()
    };
    let Some(access) = action.api_access(api_version, kind) else {
        return Vec::new();
    };
    let mut grants = match access.resource {
        AccessResource::Target => on(&plural, access.verbs),
        AccessResource::Subresource(sub) => on(&format!("{plural}/{sub}"), access.verbs),
        AccessResource::Nodes => access
            .verbs
            .iter()
            .map(|verb| grant("", "nodes", verb, &Scope::Cluster))
            .collect(),
    };
    if access.lists_history {
        // Deployments keep their history in ReplicaSets, StatefulSets and DaemonSets in
        // ControllerRevisions.
        let history = if kind == "Deployment" {
            "replicasets"
        } else {
            "controllerrevisions"
        };
        grants.push(grant("apps", history, "list", &scope));
    }
    // The Event about the action (`crate::actions::kubernetes::events`), where the object is;
    // kube's recorder puts the Events of cluster-scoped objects in `default`.
    let events_scope = match &scope {
        Scope::Cluster => Scope::Namespace(EVENTS_OF_CLUSTER_OBJECTS.to_owned()),
        other => other.clone(),
    };
    grants.push(grant("events.k8s.io", "events", "create", &events_scope));
    grants
}

/// The namespace of the Events about cluster-scoped objects (Nodes): where kube's recorder
/// creates them, and where `kubectl describe node` finds them.
pub const EVENTS_OF_CLUSTER_OBJECTS: &str = "default";

/// Kinds whose resource name is pinned here rather than derived (irregular plurals, and the
/// common kinds so their names never depend on the rule below).
const PLURALS: &[(&str, &str)] = &[
    ("Deployment", "deployments"),
    ("StatefulSet", "statefulsets"),
    ("DaemonSet", "daemonsets"),
    ("ReplicaSet", "replicasets"),
    ("Pod", "pods"),
    ("Service", "services"),
    ("ConfigMap", "configmaps"),
    ("Secret", "secrets"),
    ("Node", "nodes"),
    ("Namespace", "namespaces"),
    ("Job", "jobs"),
    ("CronJob", "cronjobs"),
    ("Ingress", "ingresses"),
    ("NetworkPolicy", "networkpolicies"),
    ("Endpoints", "endpoints"),
    ("HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    ("PodDisruptionBudget", "poddisruptionbudgets"),
];

/// The resource name of `kind`: the table, else the regular English plural of the lower-cased
/// kind.
pub fn plural(kind: &str) -> String {
    if let Some((_, plural)) = PLURALS.iter().find(|(k, _)| *k == kind) {
        return (*plural).to_owned();
    }
    let lower = kind.to_lowercase();
    if ["s", "x", "z", "ch", "sh"]
        .iter()
        .any(|end| lower.ends_with(end))
    {
        return format!("{lower}es");
    }
    let mut chars = lower.chars().rev();
    if let (Some('y'), Some(before)) = (chars.next(), chars.next())
        && !"aeiou".contains(before)
    {
        return format!("{}ies", &lower[..lower.len() - 1]);
    }
    format!("{lower}s")
}

/// A namespace written without template syntax.
fn literal(ns: &SpannedString) -> Option<&str> {
    let s = ns.value.as_str();
    (!(s.contains("{{") || s.contains("{%"))).then_some(s)
}

fn target_scope(target: &TargetSpec) -> Scope {
    match &target.namespace {
        None => Scope::Cluster,
        Some(ns) => literal(ns).map_or(Scope::AnyNamespace, |ns| Scope::Namespace(ns.to_owned())),
    }
}

fn scope_of(spec: &ActionSpec) -> Scope {
    match spec {
        ActionSpec::Scale(s) => target_scope(&s.target),
        ActionSpec::Restart(s) => target_scope(&s.target),
        ActionSpec::SetImage(s) => target_scope(&s.target),
        ActionSpec::Rollback(s) => target_scope(&s.target),
        ActionSpec::Patch(s) => target_scope(&s.target),
        ActionSpec::Delete(s) => target_scope(&s.target),
        ActionSpec::Label(s) => target_scope(&s.target),
        ActionSpec::Annotate(s) => target_scope(&s.target),
        ActionSpec::Create(s) => match &s.namespace {
            Some(ns) => {
                literal(ns).map_or(Scope::AnyNamespace, |ns| Scope::Namespace(ns.to_owned()))
            }
            None => match s
                .manifest
                .node()
                .get("metadata")
                .and_then(|m| m.value.get("namespace"))
                .map(|ns| ns.value.as_str())
            {
                None => Scope::Cluster,
                Some(Some(ns)) if !(ns.contains("{{") || ns.contains("{%")) => {
                    Scope::Namespace(ns.to_owned())
                }
                Some(_) => Scope::AnyNamespace,
            },
        },
        ActionSpec::Cordon(_) | ActionSpec::Uncordon(_) => Scope::Cluster,
        ActionSpec::Webhook(_) | ActionSpec::Kafka(_) | ActionSpec::Log(_) => Scope::Cluster,
    }
}

/// One RBAC `PolicyRule`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    /// API groups.
    pub api_groups: Vec<String>,
    /// Resources.
    pub resources: Vec<String>,
    /// Verbs.
    pub verbs: Vec<String>,
}

/// Verbs in the order `kubectl` shows them.
const VERB_ORDER: &[&str] = &[
    "get", "list", "watch", "create", "update", "patch", "delete",
];

/// Policy rules for `grants`: one rule per API group and verb set, listing its resources.
pub fn policy_rules<'a>(grants: impl IntoIterator<Item = &'a Grant>) -> Vec<PolicyRule> {
    let mut verbs: BTreeMap<(String, String), BTreeSet<&'static str>> = BTreeMap::new();
    for g in grants {
        verbs
            .entry((g.group.clone(), g.resource.clone()))
            .or_default()
            .insert(g.verb);
    }
    let mut merged: BTreeMap<(String, Vec<String>), Vec<String>> = BTreeMap::new();
    for ((group, resource), set) in verbs {
        let ordered: Vec<String> = VERB_ORDER
            .iter()
            .filter(|v| set.contains(*v))
            .map(|v| (*v).to_owned())
            .collect();
        merged.entry((group, ordered)).or_default().push(resource);
    }
    let mut rules: Vec<PolicyRule> = merged
        .into_iter()
        .map(|((group, verbs), resources)| PolicyRule {
            api_groups: vec![group],
            resources,
            verbs,
        })
        .collect();
    rules.sort();
    rules
}

/// The RBAC objects for `grants`: a ClusterRole with the cluster-scoped permissions and, when
/// some target namespace is templated, every namespaced one too; otherwise one Role per literal
/// namespace.
pub fn rbac_objects(grants: &BTreeSet<Grant>, name: &str) -> Vec<Value> {
    let any_namespace = grants.iter().any(|g| g.scope == Scope::AnyNamespace);
    let cluster: Vec<&Grant> = grants
        .iter()
        .filter(|g| any_namespace || g.scope == Scope::Cluster)
        .collect();
    let mut objects = Vec::new();
    if !cluster.is_empty() || grants.is_empty() {
        objects.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": { "name": name },
            "rules": policy_rules(cluster),
        }));
    }
    if !any_namespace {
        let mut by_namespace: BTreeMap<&str, Vec<&Grant>> = BTreeMap::new();
        for g in grants {
            if let Scope::Namespace(ns) = &g.scope {
                by_namespace.entry(ns).or_default().push(g);
            }
        }
        for (ns, grants) in by_namespace {
            objects.push(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": { "name": name, "namespace": ns },
                "rules": policy_rules(grants),
            }));
        }
    }
    objects
}

/// Renders the objects in `format`.
pub fn render(objects: &[Value], format: RbacFormat, dir: &Path) -> anyhow::Result<String> {
    match format {
        RbacFormat::Json => {
            let list = json!({ "apiVersion": "v1", "kind": "List", "items": objects });
            Ok(serde_json::to_string_pretty(&list)? + "\n")
        }
        RbacFormat::Yaml => {
            let mut out = format!(
                "# Generated by `reflex rbac {}`: what the rules' Kubernetes actions need.\n",
                dir.display()
            );
            for (i, object) in objects.iter().enumerate() {
                if i > 0 {
                    out.push_str("---\n");
                }
                out.push_str(&serde_saphyr::to_string(object).context("encoding YAML")?);
            }
            Ok(out)
        }
    }
}

/// Prints the RBAC objects; exit 1 (with every problem on stderr) when the rules are invalid.
pub fn run(args: &RbacArgs) -> anyhow::Result<ExitCode> {
    match grants(&args.dir) {
        Ok(grants) => {
            let objects = rbac_objects(&grants, &args.name);
            print!("{}", render(&objects, args.format, &args.dir)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(LoadError::Invalid(problems)) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!(
                "{} problem(s) found; fix them (`reflex validate {}`) to derive RBAC",
                problems.len(),
                args.dir.display()
            );
            Ok(ExitCode::FAILURE)
        }
        Err(err) => Err(err).with_context(|| format!("reading {}", args.dir.display())),
    }
}

#[cfg(test)]
mod tests;
