//! A light scan of template sources for what minijinja only reports at render time: the names of
//! filters and tests used, so typos fail at load. Also recognises single-expression templates.

use std::collections::BTreeSet;

use minijinja::{Environment, ErrorKind};

/// The regions of `text` that are template code (inside `{{ }}` or `{% %}`), skipping comments
/// and `{% raw %}` blocks.
fn code_regions(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let after = &rest[start..];
        let close = if after.starts_with("{{") {
            "}}"
        } else if after.starts_with("{%") {
            "%}"
        } else if after.starts_with("{#") {
            "#}"
        } else {
            rest = &after[1..];
            continue;
        };
        let body = &after[2..];
        let Some(end) = find_close(body, close) else {
            break;
        };
        let code = &body[..end];
        rest = &body[end + 2..];
        if close == "#}" {
            continue;
        }
        let stripped = code.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        if close == "%}" && stripped == "raw" {
            // Skip to the end of the raw block: its content is literal text.
            match rest.find("endraw") {
                Some(i) => {
                    rest = &rest[i..];
                    match rest.find("%}") {
                        Some(j) => rest = &rest[j + 2..],
                        None => break,
                    }
                }
                None => break,
            }
            continue;
        }
        out.push(code);
    }
    out
}

/// Index of `close` in `body`, ignoring occurrences inside string literals. Compares bytes, not
/// `str` slices: `i` walks bytes and may stop inside a multi-byte character (`é` in a comment),
/// where slicing the `str` would panic.
fn find_close(body: &str, close: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) => {
                if b == b'\\' {
                    i += 1;
                } else if b == q {
                    quote = None;
                }
            }
            None => {
                if b == b'"' || b == b'\'' {
                    quote = Some(b);
                } else if bytes[i..].starts_with(close.as_bytes()) {
                    return Some(i);
                }
            }
        }
        i += 1;
    }
    None
}

/// Splits template code into identifier and punctuation tokens, dropping string literals.
fn tokens(code: &str) -> Vec<&str> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'"' || b == b'\'' {
            i += 1;
            while i < bytes.len() && bytes[i] != b {
                if bytes[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else if b.is_ascii_alphabetic() || b == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push(&code[start..i]);
        } else if b.is_ascii_whitespace() {
            i += 1;
        } else {
            // Multi-byte UTF-8 characters only occur in strings or as errors the parser already
            // reported; step over whole characters to stay on char boundaries.
            let len = code[i..].chars().next().map_or(1, char::len_utf8);
            out.push(&code[i..i + len]);
            i += len;
        }
    }
    out
}

fn is_ident(tok: &str) -> bool {
    tok.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
}

/// Filter names used in `text` (`x | name`, `{% filter name %}`).
fn filter_names(text: &str) -> BTreeSet<&str> {
    let mut names = BTreeSet::new();
    for code in code_regions(text) {
        let toks = tokens(code);
        for (i, tok) in toks.iter().enumerate() {
            let is_filter_pos = *tok == "|" || (i == 0 && *tok == "filter");
            if is_filter_pos && let Some(next) = toks.get(i + 1).filter(|t| is_ident(t)) {
                names.insert(*next);
            }
        }
    }
    names
}

/// Test names used in `text` (`x is name`, `x is not name`).
fn test_names(text: &str) -> BTreeSet<&str> {
    let mut names = BTreeSet::new();
    for code in code_regions(text) {
        let toks = tokens(code);
        for (i, tok) in toks.iter().enumerate() {
            if *tok != "is" {
                continue;
            }
            let mut j = i + 1;
            if toks.get(j) == Some(&"not") {
                j += 1;
            }
            if let Some(next) = toks.get(j).filter(|t| is_ident(t)) {
                names.insert(*next);
            }
        }
    }
    names
}

/// Filter names in `text` that `env` does not know. Asks the environment itself (by rendering a
/// one-filter probe) so the answer follows minijinja's built-ins exactly.
pub(super) fn unknown_filters<'a>(text: &'a str, env: &Environment<'static>) -> Vec<&'a str> {
    filter_names(text)
        .into_iter()
        .filter(|name| {
            env.render_str(&format!("{{{{ none | {name} }}}}"), ())
                .is_err_and(|e| e.kind() == ErrorKind::UnknownFilter)
        })
        .collect()
}

/// Test names in `text` that `env` does not know (same probing as [`unknown_filters`]).
pub(super) fn unknown_tests<'a>(text: &'a str, env: &Environment<'static>) -> Vec<&'a str> {
    test_names(text)
        .into_iter()
        .filter(|name| {
            env.render_str(&format!("{{{{ none is {name} }}}}"), ())
                .is_err_and(|e| e.kind() == ErrorKind::UnknownTest)
        })
        .collect()
}

/// When the whole of `text` is one `{{ expression }}` (nothing before or after, no other tag),
/// the expression.
pub(super) fn single_expression(text: &str) -> Option<&str> {
    let inner = text.strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix(['-', '+']).unwrap_or(inner);
    let inner = inner.strip_suffix(['-', '+']).unwrap_or(inner);
    let nested = ["{{", "}}", "{%", "%}", "{#", "#}"];
    if inner.trim().is_empty() || nested.iter().any(|n| inner.contains(n)) {
        return None;
    }
    Some(inner.trim())
}

#[cfg(test)]
mod tests {
    use super::super::props::SYNTAX;
    use super::*;
    use crate::event::decode::arbitrary::{config, text_from};

    /// Properties over arbitrary input (`cargo test --lib props`).
    mod props {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn no_text_panics_the_scan(text in text_from(SYNTAX)) {
                let env = Environment::new();
                let _ = filter_names(&text);
                let _ = test_names(&text);
                let _ = unknown_filters(&text, &env);
                let _ = unknown_tests(&text, &env);
                if let Some(expr) = single_expression(&text) {
                    prop_assert!(text.contains(expr));
                }
            }
        }
    }

    #[test]
    fn filter_names_are_found_outside_string_literals_only() {
        let names =
            filter_names("{{ a | lower }} {{ 'x | nope' }} {% for i in b | sort %}{% endfor %}");
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["lower", "sort"]);
    }

    #[test]
    fn test_names_include_negated_tests() {
        let names = test_names("{% if a is defined and b is not none %}{% endif %}");
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["defined", "none"]);
    }

    #[test]
    fn raw_blocks_and_comments_are_not_scanned() {
        let names = filter_names("{# a | c1 #}{% raw %}{{ a | c2 }}{% endraw %}{{ b | c3 }}");
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["c3"]);
    }

    #[test]
    fn non_ascii_text_in_comments_and_tags_does_not_panic_the_scan() {
        // Regression: the closing-delimiter search sliced the `str` at every byte and panicked
        // inside the `é` of a comment (`reflex validate` exited 101).
        assert!(filter_names("{{ event.x }}{# vérifier #}").is_empty());
        let names = filter_names("{% if é %}{{ 'ü' | upper }}{# ß | nope #}{% endif %}");
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["upper"]);
    }

    #[test]
    fn single_expression_is_recognised_only_when_it_is_the_whole_text() {
        assert_eq!(single_expression("{{ event.n }}"), Some("event.n"));
        assert_eq!(single_expression("{{- event.n -}}"), Some("event.n"));
        assert_eq!(single_expression(" {{ event.n }}"), None);
        assert_eq!(single_expression("{{ a }}{{ b }}"), None);
        assert_eq!(single_expression("{{ a }}-x"), None);
    }
}
