//! The command line's own surface, as a user and a script meet it: `reflex version`,
//! `completion`, `config check|print|schema`, `-o` for `--format`, and the exit codes
//! (0 ok, 1 findings, 2 usage, 3 runtime error) for each class of outcome.

use std::path::Path;
use std::process::Command;

use crate::support::cli::{reflex, stderr, stdout};

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write fixture");
    path.to_str().expect("utf-8 temp path").to_owned()
}

#[test]
fn version_names_the_commit_and_build_date_as_text_and_json() {
    let text = reflex(&["version"]);
    assert!(text.status.success(), "{}", stderr(&text));
    let out = stdout(&text);
    assert!(
        out.starts_with(&format!("reflex {}\n", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    for label in ["commit:", "build date:", "rustc:", "target:"] {
        assert!(out.contains(label), "{label} missing: {out}");
    }
    let json = reflex(&["version", "-o", "json"]);
    let info: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    let commit = info["commit"].as_str().expect("commit");
    assert!(!commit.is_empty(), "{info}");
    let date = info["build_date"].as_str().expect("build date");
    chrono::DateTime::parse_from_rfc3339(date).expect("build date is RFC 3339");
    assert!(
        info["rustc"]
            .as_str()
            .is_some_and(|r| r.starts_with("rustc ")),
        "{info}"
    );
    assert!(
        info["target"].as_str().is_some_and(|t| !t.is_empty()),
        "{info}"
    );

    let flag = reflex(&["--version"]);
    assert!(flag.status.success());
    assert_eq!(
        stdout(&flag).trim(),
        format!(
            "reflex {} (commit {commit}, built {date})",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn completion_scripts_are_generated_for_each_shell_and_bash_accepts_its_own() {
    for shell in ["bash", "zsh", "fish"] {
        let out = reflex(&["completion", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        assert!(script.contains("reflex"), "{shell}: {script}");
        assert!(script.contains("validate"), "{shell} completes subcommands");
        // The syntax check of each shell that is installed (bash always is).
        let binary = shell;
        let installed = Command::new(binary).arg("-c").arg("true").output().is_ok();
        if shell == "bash" || installed {
            let dir = tempfile::tempdir().expect("tempdir");
            let file = write(dir.path(), &format!("reflex.{shell}"), &script);
            let check = Command::new(binary)
                .arg("-n")
                .arg(&file)
                .output()
                .expect("the shell runs");
            assert!(check.status.success(), "{shell} -n: {}", stderr(&check));
        }
    }
    let out = reflex(&["completion", "powershell"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unsupported shell is a usage error"
    );
}

const BAD_CONFIG: &str = "\
kafka:
  bootstrap_server: typo:9092
consumer:
  retry_min_delay: 5x
  partition_queue: lots
actions:
  max_concurrent: 0
store:
  url: mysql://reflex:hunter2@db/reflex
server:
  listen: nowhere
";

#[test]
fn config_check_reports_every_bad_config_class_at_once_with_positions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "reflex.yaml", BAD_CONFIG);
    let out = reflex(&["config", "check", &file]);
    assert_eq!(out.status.code(), Some(1), "findings: {}", stderr(&out));
    let text = stdout(&out);
    let expected = [
        (2, 3, "unknown field `bootstrap_server`"),
        (4, 20, "consumer.retry_min_delay: unknown unit `x`"),
        (5, 20, "consumer.partition_queue: invalid u64"),
        (7, 19, "actions.max_concurrent: must be between 1 and 256"),
        (
            9,
            8,
            "store.url: `mysql://reflex:***@db/reflex` has an unknown scheme",
        ),
        (11, 11, "server.listen: invalid socket address"),
    ];
    for (line, column, message) in expected {
        let located = format!("{file}:{line}:{column}: {message}");
        assert!(
            text.lines().any(|l| l.starts_with(&located)),
            "{located} missing:\n{text}"
        );
    }
    assert!(text.contains("did you mean `bootstrap_servers`?"), "{text}");
    assert!(text.ends_with("6 problem(s) found\n"), "{text}");
    assert!(
        !text.contains("hunter2"),
        "the password is never shown: {text}"
    );

    let json = reflex(&["config", "check", &file, "-o", "json"]);
    assert_eq!(json.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(report["valid"], false);
    assert_eq!(
        report["problems"].as_array().map(Vec::len),
        Some(6),
        "{report}"
    );
    assert_eq!(report["problems"][0]["line"], 2);

    let example = reflex(&["config", "check", "deploy/config.example.yaml"]);
    assert!(example.status.success(), "{}", stdout(&example));
}

#[test]
fn config_print_shows_the_effective_configuration_with_secrets_masked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "reflex.yaml",
        "kafka:\n  client:\n    sasl.password: s3cret\n    security.protocol: SASL_SSL\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_reflex"))
        .args(["config", "print", &file, "-o", "json"])
        .env("DATABASE_URL", "postgres://reflex:hunter2@db:5432/reflex")
        .env("KAFKA_BOOTSTRAP_SERVERS", "broker-from-env:9092")
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        !text.contains("s3cret") && !text.contains("hunter2"),
        "{text}"
    );
    let config: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(config["kafka"]["bootstrap_servers"], "broker-from-env:9092");
    assert_eq!(config["kafka"]["client"]["sasl.password"], "***");
    assert_eq!(config["kafka"]["client"]["security.protocol"], "SASL_SSL");
    assert_eq!(
        config["store"]["url"],
        "postgres://reflex:***@db:5432/reflex"
    );
    assert_eq!(config["actions"]["timeout"], "45s", "defaults filled in");

    // The YAML form is itself a configuration `check` accepts.
    let yaml = reflex(&["config", "print"]);
    assert!(yaml.status.success(), "{}", stderr(&yaml));
    let printed = write(dir.path(), "printed.yaml", &stdout(&yaml));
    let again = reflex(&["config", "check", &printed]);
    assert!(again.status.success(), "{}", stdout(&again));
}

#[test]
fn every_committed_schema_carries_an_id_naming_its_file() {
    for (kind, file) in [
        ("rules", "rules.schema.json"),
        ("tests", "tests.schema.json"),
        ("config", "config.schema.json"),
    ] {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("docs/schema")
                .join(file),
        )
        .expect("committed schema");
        let schema: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let id = schema["$id"].as_str().unwrap_or_default();
        assert!(
            id.starts_with("https://") && id.ends_with(file),
            "{kind}: {id}"
        );
    }
    let out = reflex(&["config", "schema"]);
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        schema["additionalProperties"], false,
        "unknown keys are refused"
    );
    assert!(schema["properties"]["kafka"].is_object(), "{schema}");
}

#[test]
fn o_is_format_on_every_command_that_has_format() {
    let long = reflex(&["validate", "rules", "--format", "json"]);
    let short = reflex(&["validate", "rules", "-o", "json"]);
    assert!(short.status.success(), "{}", stderr(&short));
    assert_eq!(stdout(&long), stdout(&short));
    // Each command's --help lists -o next to --format.
    for command in [
        "validate",
        "test",
        "replay",
        "backtest",
        "history",
        "release",
        "quarantines",
        "rbac",
        "version",
    ] {
        let help = stdout(&reflex(&[command, "--help"]));
        assert!(help.contains("-o, --format"), "{command}: {help}");
    }
    for command in [["config", "check"], ["config", "print"]] {
        let help = stdout(&reflex(&[command[0], command[1], "--help"]));
        assert!(help.contains("-o, --format"), "{command:?}: {help}");
    }
    let help = stdout(&reflex(&["import", "eda", "--help"]));
    assert!(help.contains("-O, --out"), "{help}");
}

#[test]
fn exit_codes_tell_findings_from_usage_from_runtime_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = write(dir.path(), "reflex.yaml", BAD_CONFIG);
    let cases: [(&[&str], i32, &str); 9] = [
        (&["validate", "rules"], 0, "valid rules"),
        (
            &["validate", "tests/data/rules-invalid"],
            1,
            "invalid rules",
        ),
        (&["config", "check", &bad], 1, "invalid configuration"),
        (&["validate", "--no-such-flag"], 2, "unknown flag"),
        (&["frobnicate"], 2, "unknown command"),
        (
            &[
                "history",
                "--since",
                "1h",
                "--until",
                "2h",
                "--store",
                "sqlite::memory:",
            ],
            2,
            "--since after --until",
        ),
        (
            &["release", " ", "--store", "sqlite::memory:"],
            2,
            "empty TARGET",
        ),
        (
            // Nothing listens on port 1: the database is unreachable.
            &["history", "--store", "postgres://reflex@127.0.0.1:1/reflex"],
            3,
            "unreachable database",
        ),
        (
            &["config", "check", "/nonexistent/reflex.yaml"],
            3,
            "unreadable file",
        ),
    ];
    for (args, code, what) in cases {
        let out = reflex(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{what}: {args:?}\nstdout: {}\nstderr: {}",
            stdout(&out),
            stderr(&out)
        );
        if code >= 2 {
            assert!(stdout(&out).is_empty(), "{what}: errors go to stderr only");
            assert!(!stderr(&out).is_empty(), "{what}: says why on stderr");
        }
    }
}

#[test]
fn a_schema_modeline_is_a_comment_validation_accepts_and_names_a_committed_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "restart.yaml",
        "# yaml-language-server: $schema=https://raw.githubusercontent.com/reflex-project/reflex/main/docs/schema/rules.schema.json\n\
         rules:\n  - name: restart\n    actions:\n      - log: {message: hi}\n",
    );
    let out = reflex(&["validate", dir.path().to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", stdout(&out));

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for entry in walkdir::WalkDir::new(root.join("rules")) {
        let path = entry.expect("readable rules dir").into_path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let Some(target) = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# yaml-language-server: $schema="))
        else {
            continue;
        };
        let schema = path.parent().expect("in a folder").join(target);
        assert!(
            schema.is_file(),
            "{}: {target} does not exist",
            path.display()
        );
        checked += 1;
    }
    assert!(checked > 0, "the shipped rule tests carry the modeline");
}

#[test]
fn a_reader_that_goes_away_ends_the_command_quietly_as_sigpipe_would() {
    // `reflex schema … | head -0`: the pipe's reader is closed before the first write, so the
    // write fails every time (no race with the pipe's buffer).
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_reflex"))
        .args(["schema", "--kind", "rules"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("the reflex binary runs");
    let err = stderr(&output);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(output.status.code(), Some(141), "{err}");
}
