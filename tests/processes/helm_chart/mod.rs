//! The Helm chart (`helm/reflex`) as CI and a cluster see it: `helm lint` and `helm template`
//! with default values and with every option, the schema refusing bad values, the committed
//! renders (`deploy/manifests`, `deploy/rbac.yaml`, the chart's bundled rules and RBAC) equal to
//! a fresh render, the output accepted by the REAL test kube-apiserver (server-side dry run),
//! and the chart's ServiceAccount + RBAC applied for real: its token may carry out the shipped
//! rules' actions and is refused (403) anything else.
//!
//! Helm comes from `scripts/helm` (built from Go modules, cached under `~/.cache/reflex`); a
//! missing binary fails the test naming that script. `cluster` holds the tests that talk to the
//! API server, `drift` the committed renders, `hooks` the `helm test` hook, labels and extension
//! points, `monitoring` the alerts and dashboard (promtool from `scripts/promtool`), `pod` the
//! binary started as the chart's pod.

mod cluster;
mod drift;
mod hooks;
mod monitoring;
mod pod;
use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

pub(crate) fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn chart() -> PathBuf {
    repo().join("helm/reflex")
}

/// The helm binary scripts/helm builds: `$REFLEX_CACHE/helm-<version>/bin/helm`.
fn helm_bin() -> PathBuf {
    cached_tool("helm", "HELM_VERSION", "helm")
}

/// A tool `scripts/<script>` builds from Go modules and caches by version:
/// `$REFLEX_CACHE/<script>-<version>/bin/<bin>`, the version read from the script's `<var>=` line
/// so the two never disagree. Not built here (minutes on a small machine): a missing binary
/// fails with the command that builds it.
pub(crate) fn cached_tool(script: &str, var: &str, bin: &str) -> PathBuf {
    let path = repo().join("scripts").join(script);
    let text = std::fs::read_to_string(&path).expect("the script exists");
    let prefix = format!("{var}=");
    let version = text
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("scripts/{script} sets {var}"));
    let cache = std::env::var_os("REFLEX_CACHE").map_or_else(
        || {
            let home =
                std::env::var_os("HOME").expect("HOME or REFLEX_CACHE is set (as for the scripts)");
            PathBuf::from(home).join(".cache/reflex")
        },
        PathBuf::from,
    );
    let bin = cache.join(format!("{script}-{version}/bin/{bin}"));
    assert!(
        bin.is_file(),
        "{script} {version} not found at {}: build it with scripts/{script} (scripts/test does)",
        bin.display()
    );
    bin
}

fn helm(args: &[&str]) -> Output {
    Command::new(helm_bin())
        .args(args)
        .current_dir(repo())
        .output()
        .expect("helm runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `helm template RELEASE helm/reflex --namespace NS EXTRA...`, which must succeed.
pub(crate) fn template(release: &str, namespace: &str, extra: &[&str]) -> String {
    let chart = chart();
    let mut args = vec!["template", release, chart.to_str().expect("UTF-8 path")];
    args.extend(["--namespace", namespace]);
    args.extend(extra);
    let out = helm(&args);
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The YAML documents of a render, empty ones (comments only) left out.
pub(crate) fn documents(yaml: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).expect("helm output is YAML");
    docs.into_iter().filter(|doc| !doc.is_null()).collect()
}

pub(crate) fn kinds(docs: &[Value]) -> Vec<String> {
    let mut kinds: Vec<String> = docs
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or("?").to_owned())
        .collect();
    kinds.sort();
    kinds
}

pub(crate) fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the render: {:?}", kinds(docs)))
}

/// The rendered `reflex.yaml`, parsed and checked by Reflex's own configuration loader: what the
/// pod would start with.
fn rendered_config(docs: &[Value], release: &str) -> reflex::config::Config {
    let configmap = find(docs, "ConfigMap", &format!("{release}-config"));
    let yaml = configmap["data"]["reflex.yaml"]
        .as_str()
        .expect("reflex.yaml key");
    let config = reflex::config::Config::from_yaml(yaml, Path::new("reflex.yaml"))
        .unwrap_or_else(|err| panic!("the chart renders a config Reflex refuses: {err:?}\n{yaml}"));
    config.validate().expect("the rendered config is valid");
    config
}

fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

fn env_var<'a>(deployment: &'a Value, name: &str) -> Option<&'a Value> {
    container(deployment)["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
}

fn volume<'a>(deployment: &'a Value, name: &str) -> &'a Value {
    deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["name"] == name))
        .unwrap_or_else(|| panic!("no volume {name}"))
}

#[test]
fn the_chart_lints_and_renders_a_hardened_deployment_with_default_values() {
    let lint = helm(&["lint", "--strict", "helm/reflex"]);
    assert!(
        lint.status.success(),
        "helm lint:\n{}{}",
        text(&lint.stdout),
        text(&lint.stderr)
    );

    let docs = documents(&template("reflex", "ops", &[]));
    assert_eq!(
        kinds(&docs),
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "ConfigMap",
            "Deployment",
            "NetworkPolicy",
            "Pod",
            "Service",
            "ServiceAccount"
        ]
    );
    let deployment = find(&docs, "Deployment", "reflex");
    assert_eq!(deployment["spec"]["replicas"], 1);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "reflex");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = container(deployment);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    assert_eq!(
        env_var(deployment, "POD_NAMESPACE").expect("POD_NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert!(
        env_var(deployment, "DATABASE_URL").is_none(),
        "SQLite by default"
    );
    let binding = find(&docs, "ClusterRoleBinding", "reflex");
    assert_eq!(
        binding["subjects"],
        json!([{ "kind": "ServiceAccount", "name": "reflex", "namespace": "ops" }])
    );

    // The configuration Reflex would load: listening for the kubelet, rules where they are
    // mounted, SQLite on the writable emptyDir.
    let config = rendered_config(&docs, "reflex");
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(config.rules.dir, Path::new("/etc/reflex/rules"));
    assert_eq!(config.store.url, "sqlite:///var/lib/reflex/reflex.db");
    // Observe first: a fresh install records what it would do and changes nothing.
    assert!(config.actions.dry_run, "a fresh install must not act");

    // The bundled rules, written out as the ConfigMap volume would hold them, load cleanly.
    let rules = find(&docs, "ConfigMap", "reflex-rules")["data"]
        .as_object()
        .expect("rule files")
        .clone();
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, body) in &rules {
        std::fs::write(dir.path().join(name), body.as_str().expect("text")).expect("write rule");
    }
    let loaded = reflex::rules::load_dir(dir.path())
        .unwrap_or_else(|err| panic!("the chart's bundled rules do not load: {err}"));
    let shipped = reflex::rules::load_dir(&repo().join("rules")).expect("the shipped rules load");
    assert_eq!(
        loaded.rules().len(),
        shipped.rules().len(),
        "every rule under rules/ is bundled"
    );
    assert!(
        rules.contains_key("alertmanager_restart-crashlooping.yaml"),
        "{:?}",
        rules.keys()
    );
}

#[test]
fn every_option_renders_into_the_objects_that_use_it() {
    let docs = documents(&template(
        "reflex",
        "ops",
        &["-f", "tests/data/helm/options.yaml"],
    ));
    let lint = helm(&[
        "lint",
        "--strict",
        "helm/reflex",
        "-f",
        "tests/data/helm/options.yaml",
    ]);
    assert!(
        lint.status.success(),
        "helm lint:\n{}{}",
        text(&lint.stdout),
        text(&lint.stderr)
    );

    // An existing rules ConfigMap: none rendered, the pod mounts the given one.
    assert!(docs.iter().all(|d| d["metadata"]["name"] != "reflex-rules"));
    let deployment = find(&docs, "Deployment", "reflex");
    assert_eq!(
        volume(deployment, "rules")["configMap"]["name"],
        "team-rules"
    );
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(
        env_var(deployment, "DATABASE_URL").expect("DATABASE_URL")["valueFrom"]["secretKeyRef"],
        json!({ "name": "reflex-db", "key": "url" })
    );
    assert_eq!(
        env_var(deployment, "CHAT_TOKEN").expect("CHAT_TOKEN")["valueFrom"]["secretKeyRef"],
        json!({ "name": "chat", "key": "token" })
    );
    assert_eq!(
        volume(deployment, "secret-0")["secret"]["secretName"],
        "signing"
    );
    assert_eq!(
        volume(deployment, "ingest-token")["secret"]["secretName"],
        "reflex-ingest"
    );

    let monitor = find(&docs, "ServiceMonitor", "reflex");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(
        find(&docs, "PodDisruptionBudget", "reflex")["spec"]["minAvailable"],
        1
    );

    // Namespaced permissions only in the listed namespaces; nodes stay cluster-wide.
    let cluster_role = find(&docs, "ClusterRole", "reflex");
    assert_eq!(
        cluster_role["rules"],
        json!([{ "apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "patch"] }])
    );
    let roles: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "Role").collect();
    let role_namespaces: Vec<&Value> = roles.iter().map(|r| &r["metadata"]["namespace"]).collect();
    assert_eq!(role_namespaces, [&json!("payments"), &json!("shop")]);
    assert!(
        roles
            .iter()
            .all(|r| r["rules"].to_string().contains("deployments/scale"))
    );
    assert_eq!(
        docs.iter().filter(|d| d["kind"] == "RoleBinding").count(),
        2
    );

    // The config Reflex loads reads the ingest token and the TLS files where they are mounted.
    let config = rendered_config(&docs, "reflex");
    assert_eq!(
        config.server.ingest.token_file.as_deref(),
        Some(Path::new("/etc/reflex/ingest/token"))
    );
    let client = &config.kafka.client;
    assert_eq!(
        client.get("security.protocol").map(String::as_str),
        Some("SSL")
    );
    assert_eq!(
        client.get("ssl.ca.location").map(String::as_str),
        Some("/etc/reflex/kafka-tls/ca.crt")
    );
    assert_eq!(
        client.get("ssl.key.location").map(String::as_str),
        Some("/etc/reflex/kafka-tls/tls.key")
    );
}

#[test]
fn values_breaking_the_schema_are_rejected_naming_each_problem() {
    let out = helm(&["lint", "helm/reflex", "-f", "tests/data/helm/invalid.yaml"]);
    assert!(!out.status.success(), "invalid values must fail lint");
    let report = format!("{}{}", text(&out.stdout), text(&out.stderr));
    for expected in [
        "/replicaCount",
        "got string, want integer",
        "additional properties 'replicas' not allowed",
        "/service/port",
        "additional properties 'dryrun' not allowed",
    ] {
        assert!(
            report.contains(expected),
            "missing `{expected}` in:\n{report}"
        );
    }
    let out = helm(&[
        "template",
        "x",
        "helm/reflex",
        "-f",
        "tests/data/helm/invalid.yaml",
    ]);
    assert!(
        !out.status.success(),
        "invalid values must fail template too"
    );
    assert!(text(&out.stderr).contains("values don't meet the specifications of the schema"));
}

#[test]
fn the_chart_works_as_a_subchart_and_going_live_is_one_value() {
    // Helm passes `global` (and umbrella charts an `enabled` switch) to every subchart.
    let docs = documents(&template(
        "reflex",
        "ops",
        &[
            "--set",
            "global.imageRegistry=registry.example.org",
            "--set",
            "enabled=true",
        ],
    ));
    assert!(rendered_config(&docs, "reflex").actions.dry_run);
    let live = documents(&template(
        "reflex",
        "ops",
        &["--set", "config.actions.dry_run=false"],
    ));
    assert!(!rendered_config(&live, "reflex").actions.dry_run);
}

#[test]
fn the_install_notes_say_it_observes_how_to_watch_it_and_the_value_to_go_live() {
    // `helm install --dry-run=client` renders NOTES.txt; it reads the cluster's version for
    // the chart's kubeVersion, so it runs against the test services' API server.
    let notes = |extra: &[&str]| {
        let mut args = vec![
            "install",
            "demo",
            "helm/reflex",
            "--dry-run=client",
            "--namespace",
            "ops",
            "--kubeconfig",
        ];
        let kubeconfig = support::kubeconfig();
        let kubeconfig = kubeconfig.to_str().expect("UTF-8 path").to_owned();
        args.push(&kubeconfig);
        args.extend_from_slice(extra);
        let out = helm(&args);
        assert!(
            out.status.success(),
            "helm install --dry-run:\n{}",
            text(&out.stderr)
        );
        let stdout = text(&out.stdout);
        stdout
            .split_once("NOTES:")
            .map(|(_, notes)| notes.to_owned())
            .unwrap_or_else(|| panic!("no NOTES in:\n{stdout}"))
    };
    let observing = notes(&[]);
    assert!(observing.contains("OBSERVE mode"), "{observing}");
    assert!(observing.contains("reflex history"), "{observing}");
    assert!(observing.contains("helm test demo -n ops"), "{observing}");
    assert!(observing.contains("/metrics"), "{observing}");
    assert!(
        observing.contains("--set config.actions.dry_run=false"),
        "{observing}"
    );
    let live = notes(&["--set", "config.actions.dry_run=false"]);
    assert!(live.contains("is LIVE"), "{live}");
    assert!(!live.contains("go live with"), "{live}");
}

#[test]
fn two_replicas_on_sqlite_are_refused_with_the_postgresql_fix() {
    let out = helm(&["template", "x", "helm/reflex", "--set", "replicaCount=2"]);
    assert!(
        !out.status.success(),
        "two replicas on private SQLite files must not render"
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("replicaCount is 2 but the audit store is SQLite")
            && stderr.contains("set store.existingSecret"),
        "{stderr}"
    );
}

fn reflex_stdout(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_reflex"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("the reflex binary runs");
    assert!(
        out.status.success(),
        "reflex {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn a_configuration_secret_replaces_the_rendered_config_map() {
    // For configurations holding credentials (Kafka SASL passwords): the whole reflex.yaml
    // comes from a Secret and no ConfigMap carries configuration.
    let docs = documents(&template(
        "reflex",
        "ops",
        &["--set", "existingConfigSecret=reflex-config-with-sasl"],
    ));
    assert!(
        docs.iter()
            .all(|d| d["metadata"]["name"] != "reflex-config")
    );
    let deployment = find(&docs, "Deployment", "reflex");
    assert_eq!(
        volume(deployment, "config")["secret"],
        json!({
            "secretName": "reflex-config-with-sasl",
            "items": [{ "key": "reflex.yaml", "path": "reflex.yaml" }]
        })
    );
    let metadata = &deployment["spec"]["template"]["metadata"];
    assert!(
        metadata.get("annotations").is_none(),
        "no rendered config to checksum, no pod annotations: {metadata}"
    );
}

#[test]
fn own_inline_rules_replace_the_bundled_ones_with_their_own_rbac() {
    let docs = documents(&template(
        "reflex",
        "ops",
        &["-f", "tests/data/helm/own-rules.yaml"],
    ));
    let data = find(&docs, "ConfigMap", "reflex-rules")["data"]
        .as_object()
        .expect("rule files")
        .clone();
    assert_eq!(data.keys().collect::<Vec<_>>(), ["restart-checkout.yaml"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("restart-checkout.yaml");
    std::fs::write(&file, data["restart-checkout.yaml"].as_str().expect("text")).expect("write");
    let loaded = reflex::rules::load_dir(dir.path())
        .unwrap_or_else(|err| panic!("the inline rule does not load: {err}"));
    assert_eq!(loaded.rules().len(), 1);

    // The RBAC override is granted as written, and it is exactly what `reflex rbac` prints for
    // the inline rule (a literal namespace: a Role in `shop`).
    assert_eq!(
        find(&docs, "ClusterRole", "reflex")["rules"],
        json!([
            { "apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"] },
            { "apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create"] },
        ])
    );
    let printed: Value = serde_json::from_str(&reflex_stdout(&[
        "rbac",
        file.to_str().expect("UTF-8 path"),
        "--format",
        "json",
    ]))
    .expect("JSON");
    assert_eq!(printed["items"][0]["kind"], "Role");
    assert_eq!(
        printed["items"][0]["rules"],
        find(&docs, "ClusterRole", "reflex")["rules"]
    );
}
