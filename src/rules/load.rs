//! Reading a rules directory: find the files, parse each one, compile every rule, and report every
//! problem at once with `file:line:column`. A rule set is only built when nothing is wrong, so a
//! bad change can never replace a good rule set half-way.

use std::path::{Path, PathBuf};

use super::compile::compile_rules;
use super::diagnostic::{Diagnostic, Diagnostics, closest};
use super::model::RuleFile;
use super::ruleset::RuleSet;

/// Largest rules file we read. Rule files are hand-written; anything bigger is a mistake (a data
/// dump in the rules folder) and would only slow every reload.
pub const MAX_RULE_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Deepest YAML nesting accepted in rule and test files. The rule model is recursive
/// (`not: {not: ...}`) and serde recurses once per level: a 2 MiB thread stack overflowed near
/// 48 levels in debug builds. Real rules stay under 15 levels; 32 leaves room and keeps a hostile
/// file from crashing the process.
pub const MAX_YAML_DEPTH: usize = 32;

/// Why a rules directory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The directory or a file in it could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// What we tried to read.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The files were read but some content is invalid; every problem is listed.
    #[error("{} problem(s) in the rules", .0.len())]
    Invalid(Vec<Diagnostic>),
}

/// Convenience alias for this module.
pub type Result<T, E = LoadError> = std::result::Result<T, E>;

/// True for a rules file (`*.yaml`/`*.yml`) that is not a rule test file (`*.test.yaml`).
pub fn is_rule_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    (name.ends_with(".yaml") || name.ends_with(".yml")) && !is_test_file(path)
}

/// True for a rule test file (`*.test.yaml` / `*.test.yml`).
pub fn is_test_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    name.ends_with(".test.yaml") || name.ends_with(".test.yml")
}

/// Every file under `dir` (recursively, sorted, hidden entries skipped) that `keep` accepts.
/// `dir` may also be a single file.
pub fn find_files(dir: &Path, keep: fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    if dir.is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut files = Vec::new();
    // Hidden entries are skipped because Kubernetes ConfigMap volumes mount files through
    // `..data` symlinked folders; following both would load every rule twice.
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walker {
        let entry = entry.map_err(|e| LoadError::Io {
            path: e.path().unwrap_or(dir).to_path_buf(),
            source: e
                .into_io_error()
                .unwrap_or_else(|| std::io::Error::other("filesystem loop")),
        })?;
        if entry.file_type().is_file() && keep(entry.path()) {
            files.push(entry.into_path());
        }
    }
    Ok(files)
}

/// Reads a file as UTF-8, refusing files over [`MAX_RULE_FILE_BYTES`].
pub fn read_source(path: &Path) -> Result<String> {
    let io = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_RULE_FILE_BYTES {
        return Err(io(std::io::Error::other(format!(
            "file is {len} bytes, larger than the {MAX_RULE_FILE_BYTES}-byte limit for rule files"
        ))));
    }
    std::fs::read_to_string(path).map_err(io)
}

/// Loads and compiles every rules file under `dir`.
pub fn load_dir(dir: &Path) -> Result<RuleSet> {
    let files = find_files(dir, is_rule_file)?;
    let mut sources = Vec::with_capacity(files.len());
    let mut unreadable = Vec::new();
    for path in files {
        match read_source(&path) {
            Ok(text) => sources.push((path, text)),
            // One unreadable file (not UTF-8, too large) is a problem like any other: report it
            // with the rest instead of hiding every other file's problems behind it.
            Err(LoadError::Io { path, source }) => unreadable.push(Diagnostic {
                file: path,
                line: 0,
                column: 0,
                rule: None,
                message: format!("cannot read the file: {source}"),
                hint: Some("rule files must be UTF-8 text of at most 4 MiB".into()),
            }),
            Err(other) => return Err(other),
        }
    }
    match load_sources(&sources) {
        Ok(rules) if unreadable.is_empty() => Ok(rules),
        Ok(_) => Err(LoadError::Invalid(unreadable)),
        Err(LoadError::Invalid(mut problems)) => {
            problems.extend(unreadable);
            problems.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
            Err(LoadError::Invalid(problems))
        }
        Err(other) => Err(other),
    }
}

/// Compiles rules from in-memory sources `(path, text)`; the paths are only used in diagnostics.
pub fn load_sources(sources: &[(PathBuf, String)]) -> Result<RuleSet> {
    let mut diags = Diagnostics::new();
    let mut parsed = Vec::new();
    for (path, text) in sources {
        diags.set_file(path);
        if let Some(file) = parse_file(text, &mut diags) {
            parsed.push((path.clone(), file));
        }
    }
    let rules = compile_rules(&parsed, &mut diags);
    if diags.is_empty() {
        Ok(RuleSet::new(rules))
    } else {
        // Parse errors are found before compile errors; report them in reading order.
        let mut problems = diags.into_vec();
        problems.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        Err(LoadError::Invalid(problems))
    }
}

/// Parses one YAML document of the shape `T`, turning a serde error into a located diagnostic
/// with a "did you mean" hint for unknown fields and variants.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(
    text: &str,
    diags: &mut Diagnostics,
) -> Option<T> {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_YAML_DEPTH;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    // Comments mean nothing to a rule. Emitted as events, the parser buffers them while it
    // looks ahead and refuses a file with a few dozen comment lines in a row ("too many
    // buffered comments"), e.g. a block of rules commented out by `reflex import eda`.
    options.emit_comments = false;
    match serde_saphyr::from_str_with_options::<T>(text, options) {
        Ok(value) => Some(value),
        Err(err) => {
            let (line, column) = err
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            let message = plain_message(&err);
            let hint = hint_for(&message);
            diags.error_at(line, column, message, hint);
            None
        }
    }
}

fn parse_file(text: &str, diags: &mut Diagnostics) -> Option<RuleFile> {
    if text.trim().is_empty() {
        diags.error_at(
            1,
            1,
            "the file is empty",
            Some("a rules file holds `rules:` followed by a list of rules; delete the file if it is unused".into()),
        );
        return None;
    }
    parse_yaml(text, diags)
}

/// serde-saphyr's message without the snippet and without the trailing location, since our
/// diagnostics print the location themselves.
fn plain_message(err: &serde_saphyr::Error) -> String {
    let text = err.without_snippet().to_string();
    let first = text.lines().next().unwrap_or_default().trim();
    match first.rfind(" at line ") {
        Some(pos) => first[..pos].to_string(),
        None => first.to_string(),
    }
}

/// Serde reports unknown names as "unknown field `x`, expected one of `a`, `b`" (serde-saphyr
/// drops the backticks in the list); turn that list into a "did you mean" hint. Bare type errors
/// ("invalid i32") get a plain-words hint.
fn hint_for(message: &str) -> Option<String> {
    if let Some(kind) = message.strip_prefix("invalid ") {
        let words = match kind.trim() {
            "i8" | "i16" | "i32" | "i64" => "a whole number, e.g. `10` or `-5`",
            "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number of zero or more, e.g. `3`",
            "f32" | "f64" => "a number, e.g. `0.9`",
            "bool" | "boolean" => "`true` or `false`",
            _ => return None,
        };
        return Some(format!("this field takes {words}"));
    }
    let unknown = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let got = unknown.split('`').next()?;
    let list = message.split("expected ").nth(1)?;
    let list = list.strip_prefix("one of ").unwrap_or(list);
    let expected: Vec<&str> = list
        .split([',', '`', ' '])
        .map(str::trim)
        .filter(|w| !w.is_empty() && *w != "or")
        .collect();
    match closest(got, expected.iter().copied()) {
        Some(best) => Some(format!("did you mean `{best}`?")),
        None => Some(format!("valid names: {}", expected.join(", "))),
    }
}

#[cfg(test)]
#[path = "load_props.rs"]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_hint_names_the_closest_valid_field() {
        let hint = hint_for("unknown field `whne`, expected one of `name`, `when`, `actions`");
        assert_eq!(hint.as_deref(), Some("did you mean `when`?"));
    }

    #[test]
    fn unknown_field_far_from_every_name_lists_the_valid_ones() {
        let hint = hint_for("unknown field `zzzzzzzz`, expected `name` or `when`");
        assert_eq!(hint.as_deref(), Some("valid names: name, when"));
    }

    #[test]
    fn unknown_field_hint_reads_saphyr_lists_without_backticks() {
        let hint =
            hint_for("unknown field `whne`, expected one of name, description, when, actions");
        assert_eq!(hint.as_deref(), Some("did you mean `when`?"));
    }

    #[test]
    fn bare_type_errors_get_a_plain_words_hint() {
        assert_eq!(
            hint_for("invalid i32").as_deref(),
            Some("this field takes a whole number, e.g. `10` or `-5`")
        );
        assert_eq!(hint_for("invalid something else"), None);
    }

    #[test]
    fn deeply_nested_rule_file_is_a_located_error_not_a_crash() {
        let mut text = String::from("rules:\n  - name: deep\n    condition:\n");
        let mut indent = 6;
        for _ in 0..60 {
            text.push_str(&format!("{:indent$}not:\n", ""));
            indent += 2;
        }
        text.push_str(&format!("{:indent$}{{path: a, exists: true}}\n", ""));
        text.push_str("    actions: [{log: {message: x}}]\n");
        let err = load_sources(&[("deep.yaml".into(), text)]).expect_err("too deep");
        let LoadError::Invalid(problems) = err else {
            panic!("expected diagnostics, got {err}");
        };
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].line > 0, "{:?}", problems[0]);
        assert!(
            problems[0].message.contains("depth"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn a_file_that_is_not_utf8_is_reported_with_the_other_problems() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.yaml"), [0xff, 0xfe, 0x00]).expect("write");
        std::fs::write(
            dir.path().join("b.yaml"),
            "rules:\n  - name: x\n    whne: y\n",
        )
        .expect("write");
        let Err(LoadError::Invalid(problems)) = load_dir(dir.path()) else {
            panic!("expected diagnostics");
        };
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].message.contains("cannot read"),
            "{:?}",
            problems[0]
        );
        assert!(problems[1].message.contains("whne"), "{:?}", problems[1]);
    }

    #[test]
    fn a_long_run_of_comment_lines_is_no_problem() {
        let comments = "# a rule set aside for now\n".repeat(200);
        let text = format!(
            "rules:\n{comments}  - name: x\n{comments}    when: a == 1\n    actions: \
             [{{log: {{message: x}}}}]\n{comments}"
        );
        let set = load_sources(&[("c.yaml".into(), text)]).expect("comments are ignored");
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn test_files_are_not_rule_files() {
        assert!(is_rule_file(Path::new("rules/a.yaml")));
        assert!(is_rule_file(Path::new("rules/a.yml")));
        assert!(!is_rule_file(Path::new("rules/a.test.yaml")));
        assert!(is_test_file(Path::new("rules/a.test.yml")));
        assert!(!is_rule_file(Path::new("rules/README.md")));
    }
}
