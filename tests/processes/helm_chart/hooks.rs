//! The chart's `helm test` hook, the recommended labels on every object, and its extension points
//! (log level, extra environment, volumes, mounts, containers, rules from a git-sync volume):
//! rendered by helm and checked as data, the hook's `reflex validate` step run with the real
//! binary, and the hook Pod and the git-sync recipe accepted by the REAL kube-apiserver
//! (server-side dry run).

use std::process::Command;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams};
use serde_json::{Value, json};

use super::cluster::{NotApplied, apply, create_namespace};
use super::{container, documents, env_var, find, support, template, volume};

/// The git-sync recipe docs/deploy.md shows, as a values file.
const GIT_SYNC: &str = "tests/data/helm/git-sync.yaml";
/// The values exercising every option.
const OPTIONS: &str = "tests/data/helm/options.yaml";

/// `metadata.labels` of `object` (an object or a pod template).
fn labels(object: &Value) -> &Value {
    &object["metadata"]["labels"]
}

/// Kubernetes' recommended labels plus the chart's, with the values every object must carry.
fn expected_labels(component: &str) -> Value {
    json!({
        "app.kubernetes.io/name": "reflex",
        "app.kubernetes.io/instance": "reflex",
        "app.kubernetes.io/version": env!("CARGO_PKG_VERSION"),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "reflex",
        "app.kubernetes.io/managed-by": "Helm",
        "helm.sh/chart": format!("reflex-{}", chart_version()),
    })
}

fn chart_version() -> String {
    let chart = std::fs::read_to_string(super::chart().join("Chart.yaml")).expect("Chart.yaml");
    let chart: Value = serde_saphyr::from_str(&chart).expect("Chart.yaml is YAML");
    chart["version"].as_str().expect("version").to_owned()
}

fn assert_labelled(what: &str, labels: &Value, component: &str) {
    for (key, value) in expected_labels(component).as_object().expect("object") {
        assert_eq!(&labels[key], value, "{what}: label {key} in {labels}");
    }
}

#[test]
fn every_object_and_every_pod_carries_the_recommended_labels() {
    let renders: [&[&str]; 4] = [
        &[],
        &["-f", OPTIONS],
        &["-f", GIT_SYNC],
        &[
            "--set",
            "prometheusRule.enabled=true",
            "--set",
            "grafanaDashboard.enabled=true",
        ],
    ];
    for extra in renders {
        let docs = documents(&template("reflex", "ops", extra));
        for doc in &docs {
            let what = format!("{} {} ({extra:?})", doc["kind"], doc["metadata"]["name"]);
            let component = if doc["kind"] == "Pod" {
                "test"
            } else {
                "controller"
            };
            assert_labelled(&what, labels(doc), component);
            if doc["kind"] == "Deployment" {
                assert_labelled(&what, labels(&doc["spec"]["template"]), "controller");
            }
        }
        assert!(docs.iter().any(|d| d["kind"] == "Deployment"), "{extra:?}");
    }
}

#[test]
fn log_level_environment_volumes_and_sidecars_render_into_the_pod() {
    let docs = documents(&template("reflex", "ops", &["-f", OPTIONS]));
    let deployment = find(&docs, "Deployment", "reflex");
    let rust_log = env_var(deployment, "RUST_LOG").expect("RUST_LOG");
    assert_eq!(rust_log["value"], "info,reflex::actions=debug");
    assert_eq!(
        env_var(deployment, "HTTPS_PROXY").expect("HTTPS_PROXY")["value"],
        "http://proxy.example.org:3128"
    );
    // extraEnv comes after the chart's variables, so the same name overrides the chart's.
    let env = container(deployment)["env"].as_array().expect("env");
    let position = |name: &str| env.iter().position(|e| e["name"] == name).expect(name);
    assert!(position("RUST_LOG") < position("HTTPS_PROXY"));
    assert_eq!(volume(deployment, "scratch")["emptyDir"], json!({}));
    let mounts = container(deployment)["volumeMounts"]
        .as_array()
        .expect("mounts");
    assert!(
        mounts.contains(&json!({ "name": "scratch", "mountPath": "/var/cache/reflex" })),
        "{mounts:?}"
    );
    let pod = &deployment["spec"]["template"]["spec"];
    let names = |list: &Value| -> Vec<String> {
        list.as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|c| c["name"].as_str().unwrap_or("?").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(names(&pod["containers"]), ["reflex", "log-shipper"]);
    assert_eq!(names(&pod["initContainers"]), ["wait-for-kafka"]);

    // The default log level.
    let docs = documents(&template("reflex", "ops", &[]));
    let deployment = find(&docs, "Deployment", "reflex");
    assert_eq!(
        env_var(deployment, "RUST_LOG").expect("RUST_LOG")["value"],
        "info"
    );
    assert!(
        deployment["spec"]["template"]["spec"]
            .get("initContainers")
            .is_none()
    );
}

#[test]
fn the_git_sync_recipe_shares_one_volume_between_git_sync_and_the_rules_dir() {
    let docs = documents(&template("reflex", "ops", &["-f", GIT_SYNC]));
    assert!(
        docs.iter().all(|d| d["metadata"]["name"] != "reflex-rules"),
        "no rules ConfigMap when the rules come from a volume"
    );
    let deployment = find(&docs, "Deployment", "reflex");
    assert_eq!(
        volume(deployment, "rules"),
        &json!({ "name": "rules", "emptyDir": {} })
    );
    let pod = &deployment["spec"]["template"]["spec"];
    let mount_of = |c: &Value| {
        c["volumeMounts"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["name"] == "rules"))
            .map(|m| m["mountPath"].clone())
    };
    // Reflex reads the volume where its config says the rules are; git-sync writes into it.
    assert_eq!(
        mount_of(container(deployment)),
        Some(json!("/etc/reflex/rules"))
    );
    assert_eq!(mount_of(&pod["containers"][1]), Some(json!("/git")));
    assert_eq!(mount_of(&pod["initContainers"][0]), Some(json!("/git")));
    assert!(
        pod["initContainers"][0]["args"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("--one-time"))),
        "the init container syncs once, so the first rule set is there at start"
    );
    // git-sync's own bookkeeping (.git, .worktrees) is hidden and Reflex skips hidden entries,
    // so only the `current` link's rules load: a checkout laid out like git-sync's loads once.
    let root = tempfile::tempdir().expect("tempdir");
    let worktree = root.path().join(".worktrees/0123abcd");
    std::fs::create_dir_all(&worktree).expect("worktree dir");
    std::fs::copy(
        super::repo().join("rules/alertmanager/restart-crashlooping.yaml"),
        worktree.join("restart-crashlooping.yaml"),
    )
    .expect("copy a rule file");
    std::os::unix::fs::symlink(".worktrees/0123abcd", root.path().join("current"))
        .expect("current link");
    let loaded = reflex::rules::load_dir(root.path()).expect("rules load through the link");
    let once = reflex::rules::load_dir(&worktree).expect("the worktree loads");
    assert_eq!(loaded.rules().len(), once.rules().len());
}

/// The hook Pod of a render.
fn hook_pod<'a>(docs: &'a [Value], release: &str) -> &'a Value {
    find(docs, "Pod", &format!("{release}-test"))
}

fn reflex(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_reflex"))
        .args(args)
        .output()
        .expect("the reflex binary runs")
}

#[test]
fn the_test_hook_validates_the_mounted_rules_and_asks_the_service_for_readiness() {
    let docs = documents(&template("reflex", "ops", &[]));
    let pod = hook_pod(&docs, "reflex");
    assert_eq!(pod["metadata"]["annotations"]["helm.sh/hook"], "test");
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    assert_eq!(pod["spec"]["automountServiceAccountToken"], false);
    let deployment = find(&docs, "Deployment", "reflex");

    // Step 1: `reflex validate` in Reflex's own image on the same rules ConfigMap.
    let validate = &pod["spec"]["initContainers"][0];
    assert_eq!(validate["image"], container(deployment)["image"]);
    assert_eq!(validate["args"], json!(["validate", "/etc/reflex/rules"]));
    assert_eq!(
        validate["volumeMounts"][0],
        json!({ "name": "rules", "mountPath": "/etc/reflex/rules", "readOnly": true })
    );
    assert_eq!(pod["spec"]["volumes"][0], *volume(deployment, "rules"));

    // Step 2: the Service's /readyz, the same endpoint as the Deployment's readiness probe.
    let service = find(&docs, "Service", "reflex");
    let port = &service["spec"]["ports"][0]["port"];
    let url = pod["spec"]["containers"][0]["command"]
        .as_array()
        .and_then(|c| c.last())
        .expect("the URL ends the wget command");
    assert_eq!(url, &json!(format!("http://reflex.ops.svc:{port}/readyz")));
    assert_eq!(
        container(deployment)["readinessProbe"]["httpGet"]["path"],
        "/readyz"
    );

    // The validate step as the Pod runs it, on the rules as the ConfigMap volume holds them:
    // passes for the bundled rules, fails (exit 1, naming the file) once a broken file is added.
    let dir = tempfile::tempdir().expect("tempdir");
    let data = find(&docs, "ConfigMap", "reflex-rules")["data"]
        .as_object()
        .expect("rule files");
    for (name, body) in data {
        std::fs::write(dir.path().join(name), body.as_str().expect("text")).expect("write");
    }
    let args: Vec<String> = validate["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| {
            a.as_str()
                .expect("string")
                .replace("/etc/reflex/rules", &dir.path().display().to_string())
        })
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ok = reflex(&args);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout.contains("rule(s) valid"), "{stdout}");
    std::fs::write(dir.path().join("broken.yaml"), "rules:\n  - name: broken\n").expect("write");
    let broken = reflex(&args);
    assert_eq!(
        broken.status.code(),
        Some(1),
        "a broken rule fails the hook"
    );
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&broken.stdout),
        String::from_utf8_lossy(&broken.stderr)
    );
    assert!(report.contains("broken.yaml"), "{report}");

    // Off, the hook is not rendered; with rules from a git-sync volume, only readiness is
    // checked (the rules are not in any ConfigMap the hook could mount).
    let off = documents(&template(
        "reflex",
        "ops",
        &["--set", "helmTest.enabled=false"],
    ));
    assert!(off.iter().all(|d| d["kind"] != "Pod"));
    let synced = documents(&template("reflex", "ops", &["-f", GIT_SYNC]));
    let pod = hook_pod(&synced, "reflex");
    assert!(pod["spec"].get("initContainers").is_none(), "{pod}");
    assert!(pod["spec"].get("volumes").is_none(), "{pod}");
}

#[tokio::test]
async fn the_test_hook_and_the_git_sync_recipe_pass_server_side_dry_run() {
    let admin = support::kube_client(&support::kubeconfig()).await;
    let ns = support::unique_name("helm-hook");
    create_namespace(&admin, &ns).await;
    // In a task so the namespace is deleted even when an assertion fails.
    let outcome = tokio::spawn(dry_run_hooks(admin.clone(), ns.clone())).await;
    let cleanup = Api::<Namespace>::all(admin)
        .delete(&ns, &DeleteParams::default())
        .await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
    cleanup.expect("clean up");
}

async fn dry_run_hooks(admin: kube::Client, ns: String) {
    // The hook manifests alone (what `helm test` creates), with the default values and with
    // the git-sync recipe; then the whole git-sync render, whose Deployment has the sidecar.
    let show_hook = ["--show-only", "templates/tests/pod-check.yaml"];
    let hooks = [
        template("reflex", &ns, &show_hook),
        template("synced", &ns, &[&["-f", GIT_SYNC][..], &show_hook].concat()),
    ];
    let whole = template("synced", &ns, &["-f", GIT_SYNC]);
    let mut applied = Vec::new();
    for doc in hooks.iter().chain([&whole]).flat_map(|r| documents(r)) {
        match apply(&admin, &ns, &doc, true).await {
            Ok(object) => applied.push(format!(
                "{} {}",
                doc["kind"].as_str().unwrap_or("?"),
                object.metadata.name.unwrap_or_default()
            )),
            Err(NotApplied::UnknownKind(why)) => panic!("the API server does not know {why}"),
        }
    }
    for expected in [
        "Pod reflex-test",
        "Pod synced-reflex-test",
        "Deployment synced-reflex",
    ] {
        assert!(
            applied.iter().any(|a| a == expected),
            "{expected} in {applied:?}"
        );
    }
}
