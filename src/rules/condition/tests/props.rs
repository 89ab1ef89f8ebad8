//! Property tests: no expression, path or condition tree makes the parser panic (errors are
//! fine), no event makes evaluation panic, and what compiles renders back to text that compiles
//! to the same condition.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::Map;

use super::super::Path;
use super::*;
use crate::event::decode::arbitrary::{config, event, near_valid, text_from};

/// Pieces of the expression language and of paths.
const EXPR: &[&str] = &[
    " and ",
    " or ",
    "not ",
    "!",
    "&&",
    "||",
    "(",
    ")",
    "[",
    "]",
    ",",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "=",
    " in ",
    " not in ",
    "=~",
    "!~",
    " matches ",
    " contains ",
    " startswith ",
    " ends_with ",
    " older_than ",
    " newer_than ",
    "exists(",
    "lower(",
    "true",
    "false",
    "null",
    "labels",
    ".severity",
    "[\"a.b\"]",
    "['x']",
    "[0]",
    "[-1]",
    "$",
    "$.",
    "..",
    "[*]",
    "[?(",
    "@",
    "@topic",
    "@headers",
    "@attributes",
    "@timestamp",
    ".0",
    "\"",
    "'",
    "\\u{",
    "\\u00e9",
    "\\",
    "10m",
    "1h30m",
    "500ms",
    "-",
    "1.5",
    "1e3",
    "9e999",
    "x",
];

/// Paths into the events the strategies generate (see `arbitrary::KEYS`), in every spelling.
const PATHS: &[&str] = &[
    "labels.severity",
    "labels[\"app.kubernetes.io/name\"]",
    "alerts[0].status",
    "alerts[-1].labels",
    "alerts.0",
    "count",
    "status",
    "output_fields['k8s.ns.name']",
    "$.labels.severity",
    "$..status",
    "$.alerts[*].labels.severity",
    "$.alerts[?(@.status == 'firing')]",
    "@topic",
    "@key",
    "@id",
    "@timestamp",
    "@partition",
    "@offset",
    "@format",
    "@type",
    "@source",
    "@headers.traceparent",
    "@headers[\"é\"]",
    "@attributes.status",
    "@attributes.labels[0]",
    "startsAt",
    "[\"\"]",
];

/// Literal values of the expression language, edge cases included.
const LITERALS: &[&str] = &[
    "\"critical\"",
    "'firing'",
    "\"\"",
    "\"é\\u00e9\\u{1F600}\\n\\\\\"",
    "\"\\d+\"",
    "0",
    "-1",
    "1.5",
    "-0.0",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551615",
    "1e308",
    "5e-324",
    "true",
    "false",
    "null",
    "[]",
    "[\"a\", 1, null, [2]]",
    "\"2026-01-01T00:00:00Z\"",
];

/// Comparison operators, each with what may follow it.
const OPERATORS: &[(&str, &[&str])] = &[
    ("==", LITERALS),
    ("!=", LITERALS),
    ("<", LITERALS),
    ("<=", LITERALS),
    (">", LITERALS),
    (">=", LITERALS),
    (
        "in",
        &["[\"a\", \"critical\"]", "[1, 2.5, null]", "[]", "\"x\""],
    ),
    ("not in", &["[\"kube-system\"]", "[0]"]),
    ("=~", &["\"^crit\"", "\"(?i)FIRING\"", "\"[\"", "\"\\\\\""]),
    ("!~", &["\".*\"", "\"a{2,}\""]),
    ("matches", &["\"^[a-z]+$\""]),
    ("contains", LITERALS),
    ("startswith", &["\"crit\"", "\"\"", "\"é\""]),
    ("ends_with", &["\"al\"", "'😀'"]),
    (
        "older_than",
        &["10m", "1h30m", "0s", "365d", "\"500ms\"", "366d"],
    ),
    ("newer_than", &["1d", "1ms", "10x"]),
];

/// A well-formed comparison, `exists(...)`, `lower(...)` or constant.
fn comparison() -> impl Strategy<Value = String> {
    let path = || select(PATHS).prop_map(str::to_owned);
    let compare = (path(), select(OPERATORS), any::<usize>())
        .prop_map(|(p, (op, values), i)| format!("{p} {op} {}", values[i % values.len()]));
    prop_oneof![
        6 => compare,
        1 => path().prop_map(|p| format!("exists({p})")),
        1 => (path(), select(LITERALS)).prop_map(|(p, v)| format!("lower({p}) == {v}")),
        1 => select(vec!["true", "false"]).prop_map(str::to_owned),
    ]
}

/// Expressions: well-formed ones joined by `and`/`or`/`not`/parentheses, sometimes with a
/// random piece spliced in (near-valid input reaches the deeper error paths); or random text.
fn expression() -> impl Strategy<Value = String> {
    let valid = comparison().prop_recursive(4, 16, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} || {b}")),
            inner.clone().prop_map(|a| format!("not ({a})")),
            inner.prop_map(|a| format!("!{a}")),
        ]
    });
    near_valid(valid.boxed(), EXPR)
}

/// Compiles `text`; checks the contract between the result and the diagnostics.
fn compile(text: &str) -> Result<Option<Condition>, TestCaseError> {
    let mut diags = Diagnostics::new();
    let cond = Condition::compile_expr(&spanned(text), &mut diags);
    prop_assert_eq!(cond.is_none(), !diags.is_empty());
    Ok(cond)
}

/// Operators of a YAML leaf with values for them (JSON text), wrong types included.
const TREE_OPS: &[(&str, &[&str])] = &[
    (
        "equals",
        &[
            "\"critical\"",
            "1",
            "18446744073709551615",
            "null",
            "[1]",
            "{\"a\": 1}",
        ],
    ),
    ("not_equals", &["\"x\"", "-0.0", "true"]),
    ("in", &["[\"critical\", 1, null]", "[]", "\"x\""]),
    ("not_in", &["[\"kube-system\"]", "[[1]]"]),
    ("exists", &["true", "false", "\"yes\""]),
    ("matches", &["\"^crit\"", "\"[\"", "\"(?i)é\"", "1"]),
    ("contains", &["\"a\"", "1", "null", "[1]"]),
    ("starts_with", &["\"c\"", "\"\"", "1"]),
    ("ends_with", &["\"l\"", "\"😀\""]),
    ("gt", &["0", "1e308", "\"2026-01-01T00:00:00Z\"", "\"x\""]),
    ("gte", &["-9223372036854775808", "0.5"]),
    ("lt", &["18446744073709551615", "\"1\""]),
    ("lte", &["5e-324", "null"]),
    ("older_than", &["\"10m\"", "\"365d\"", "\"1x\"", "5"]),
    ("newer_than", &["\"1h30m\"", "\"0s\""]),
    ("expr", &["\"labels.severity == 'critical'\"", "\"(\""]),
    ("bogus", &["1"]),
];

/// A condition tree in the YAML model's shape: leaves with one operator (sometimes none, two
/// or `ignore_case`), nested in `all`/`any`/`not`.
fn tree() -> impl Strategy<Value = Value> {
    let op = (select(TREE_OPS), any::<usize>()).prop_map(|((op, values), i)| {
        let value = serde_json::from_str(values[i % values.len()]).expect("a JSON literal");
        ((*op).to_owned(), value)
    });
    let path = prop_oneof![3 => select(PATHS).prop_map(str::to_owned), 1 => text_from(EXPR)];
    let ops = prop_oneof![6 => vec(op.clone(), 1..2), 1 => vec(op, 0..3)];
    let leaf = (path, ops, proptest::option::weighted(0.2, any::<bool>())).prop_map(
        |(path, ops, ignore_case)| {
            let mut leaf = Map::new();
            leaf.insert("path".into(), Value::String(path));
            for (op, value) in ops {
                leaf.insert(op, value);
            }
            if let Some(flag) = ignore_case {
                leaf.insert("ignore_case".into(), Value::Bool(flag));
            }
            Value::Object(leaf)
        },
    );
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(|v| json!({ "all": v })),
            vec(inner.clone(), 0..4).prop_map(|v| json!({ "any": v })),
            inner.prop_map(|v| json!({ "not": v })),
        ]
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn no_expression_panics_the_parser_or_evaluation(text in expression(), event in event()) {
        if let Some(cond) = compile(&text)? {
            let _ = cond.eval(&event);
            let _ = cond.explain(&event).to_string();
            let _ = cond.required_equalities();
        }
    }

    #[test]
    fn a_compiled_expression_renders_back_to_the_same_condition(text in expression(), event in event()) {
        if let Some(cond) = compile(&text)? {
            let rendered = cond.to_string();
            let again = compile(&rendered)?;
            prop_assert!(again.is_some(), "`{}` rendered as `{}`, which does not compile", text, rendered);
            let again = again.expect("checked");
            prop_assert_eq!(again.to_string(), rendered.clone());
            prop_assert_eq!(again.eval(&event), cond.eval(&event), "`{}` vs `{}`", text, rendered);
        }
    }

    #[test]
    fn no_text_panics_the_path_parser_and_parsed_paths_round_trip(text in prop_oneof![select(PATHS).prop_map(str::to_owned), text_from(PATHS), text_from(EXPR)], event in event()) {
        if let Ok(path) = Path::parse(&text) {
            let again = Path::parse(path.as_str());
            prop_assert_eq!(again.as_ref().ok(), Some(&path), "`{}` normalised to `{}`", text, path.as_str());
            let _ = path.resolve_one(&event);
            let _ = path.resolve_all(&event);
            let _ = path.resolve_str(&event);
        }
    }

    #[test]
    fn no_condition_tree_panics_compile_or_evaluation(tree in tree(), event in event()) {
        let yaml = serde_json::to_string(&tree).expect("a Value serializes");
        if let Ok(model) = serde_saphyr::from_str::<model::Condition>(&yaml) {
            let mut diags = Diagnostics::new();
            if let Some(cond) = Condition::compile(&model, &mut diags) {
                let _ = cond.eval(&event);
                let _ = cond.explain(&event).to_string();
            }
        }
    }
}
