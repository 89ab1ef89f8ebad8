//! ansible-rulebook conditions (`event.x == "y" and event.y is defined`) turned into Reflex
//! expressions: the comparison operators, `in`, `contains` and `and`/`or`/`not` are the same
//! words, so conversion is a token walk that rewrites only what differs (`is defined`,
//! `is match(...)`, `not contains`, the source's payload wrapper, Python literals).

use regex::Regex;

use super::Source;

/// One token of a rulebook condition, kept as written.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A quoted string, quotes included.
    Str(String),
    /// A word or path: `event.alert.labels["a b"]`, `and`, `defined`, `true`, `5`.
    Word(String),
    /// Punctuation and operators: `(`, `)`, `[`, `]`, `,`, `==`, `<<`, `=`…
    Sym(String),
}

impl Tok {
    fn text(&self) -> &str {
        match self {
            Tok::Str(s) | Tok::Word(s) | Tok::Sym(s) => s,
        }
    }
}

fn tokenize(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let word_char = |c: char| c.is_alphanumeric() || c == '_' || c == '.' || c == '-';
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '\'' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            if i >= chars.len() {
                return Err(format!("unterminated string in `{src}`"));
            }
            i += 1;
            toks.push(Tok::Str(chars[start..i].iter().collect()));
        } else if word_char(c) && (c != '-' || chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let start = i;
            while i < chars.len() {
                if word_char(chars[i]) {
                    i += 1;
                } else if chars[i] == '[' && i > start {
                    // A bracketed step attached to a path: `labels["a b"]`, `alerts[0]`.
                    let close = chars[i..].iter().position(|c| *c == ']');
                    i += close.map_or(chars.len() - i, |n| n + 1);
                } else {
                    break;
                }
            }
            toks.push(Tok::Word(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let sym = if ["==", "!=", "<=", ">=", "<<"].contains(&two.as_str()) {
                two
            } else {
                c.to_string()
            };
            i += sym.chars().count();
            toks.push(Tok::Sym(sym));
        }
    }
    Ok(toks)
}

/// Rewrites the source's payload wrapper in a path or template: `ansible.eda.alertmanager`
/// puts the alert under `event.alert` and its host under `event.meta.hosts`, the webhook source
/// the body under `event.payload`, the Kafka source the message under `event.body`; in Reflex
/// the event is the alert, the body, the message itself.
pub(super) fn rewrite_paths(text: &str, source: &Source) -> String {
    let rewrite = |text: &str, pattern: &str, with: &str| {
        Regex::new(pattern)
            .expect("a literal pattern")
            .replace_all(text, with)
            .into_owned()
    };
    // The wrapper, on the event and on a multi-event rule's named events (`events.<name>`).
    let unwrap = |text: &str, wrapper: &str| {
        let text = rewrite(text, &format!(r"\bevent\.{wrapper}\b"), "event");
        rewrite(&text, &format!(r"\b(events\.\w+)\.{wrapper}\b"), "$1")
    };
    let text = match source {
        Source::Alertmanager { host_path } => {
            let hosts = format!("event.{host_path}");
            rewrite(&unwrap(text, "alert"), r"\bevent\.meta\.hosts\b", &hosts)
        }
        Source::Webhook => unwrap(text, "payload"),
        Source::Kafka { .. } => unwrap(text, "body"),
        Source::Other => text.to_owned(),
    };
    // The matched events of a multi-event (`all`) rule: `match.events.<name>` in Reflex.
    rewrite(&text, r"(^|[^.\w])events\.", "${1}match.events.")
}

/// Converts one condition; `Err` says why it cannot be.
pub(super) fn convert(src: &str, source: &Source) -> Result<String, String> {
    let toks = tokenize(src)?;
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let tok = &toks[i];
        let next = |n: usize| toks.get(i + n).map(Tok::text);
        match tok {
            Tok::Str(s) => out.push(s.clone()),
            Tok::Sym(s) if s == "<<" => {
                return Err(
                    "an assignment (`events.name << ...`) only works in an `all:` list".into(),
                );
            }
            Tok::Sym(s) if s == "=" => return Err(format!("`=` in `{src}`: write `==`")),
            Tok::Sym(s) => out.push(s.clone()),
            Tok::Word(w) if w == "is" => {
                let operand = out
                    .pop()
                    .ok_or_else(|| format!("`is` without a path in `{src}`"))?;
                let negated = next(1) == Some("not");
                let at = if negated { 2 } else { 1 };
                match next(at) {
                    Some("defined") => {
                        let neg = if negated { "not " } else { "" };
                        out.push(format!("{neg}exists({operand})"));
                        i += at + 1;
                        continue;
                    }
                    Some(test @ ("match" | "search" | "regex")) if next(at + 1) == Some("(") => {
                        let (regex, used) = regex_test(&toks[i + at + 2..], test, src)?;
                        let op = if negated { "!~" } else { "matches" };
                        out.push(format!("{operand} {op} {regex}"));
                        i += at + 2 + used;
                        continue;
                    }
                    other => {
                        return Err(format!(
                            "`is {}` has no Reflex equivalent (supported: is defined, is not defined, is match/search/regex)",
                            other.unwrap_or("")
                        ));
                    }
                }
            }
            Tok::Word(w) if w == "not" && next(1) == Some("contains") => {
                // `x not contains v` → `not (x contains v)`.
                let operand = out
                    .pop()
                    .ok_or_else(|| format!("`not contains` without a path in `{src}`"))?;
                let (value, used) = value_at(&toks[i + 2..]);
                out.push(format!("not ({operand} contains {value})"));
                i += 2 + used;
                continue;
            }
            Tok::Word(w) => {
                let converted = word(w, source)?;
                // A bare path is a truth test in ansible-rulebook (`event.up and not
                // event.maintenance`); Reflex compares explicitly.
                let bare = converted.starts_with("event")
                    && matches!(next(1), None | Some("and" | "or" | ")"));
                out.push(if bare {
                    format!("{converted} == true")
                } else {
                    converted
                });
            }
        }
        i += 1;
    }
    Ok(join(&out))
}

/// Joins output pieces with spaces, except inside brackets and before commas: `f(a)`, `[1, 2]`.
fn join(pieces: &[String]) -> String {
    let mut text = String::new();
    for (i, piece) in pieces.iter().enumerate() {
        let tight = i == 0
            || matches!(piece.as_str(), ")" | "]" | ",")
            || matches!(pieces[i - 1].as_str(), "(" | "[");
        if !tight {
            text.push(' ');
        }
        text.push_str(piece);
    }
    text
}

/// A word: a keyword, a literal or a path.
fn word(w: &str, source: &Source) -> Result<String, String> {
    let known = [
        "and", "or", "not", "in", "contains", "true", "false", "null",
    ];
    if known.contains(&w) || w.parse::<f64>().is_ok() {
        return Ok(w.to_owned());
    }
    match w {
        "True" => return Ok("true".into()),
        "False" => return Ok("false".into()),
        "None" => return Ok("null".into()),
        _ => {}
    }
    let rewritten = rewrite_paths(w, source);
    let root = rewritten.split(['.', '[']).next().unwrap_or("");
    match root {
        "event" if !rewritten.starts_with("event.meta") => Ok(rewritten),
        "event" => Err(format!(
            "`{w}` is ansible-rulebook's event metadata; Reflex has `@` metadata paths instead (@topic, @headers.<name>…)"
        )),
        "match" => Err(format!(
            "`{w}` compares with another matched event; Reflex joins events by a correlate `key:` instead"
        )),
        "fact" | "facts" => Err(format!("`{w}` reads a fact; Reflex has no fact store")),
        "vars" => Err(format!(
            "`{w}` reads a rulebook variable; write its value instead"
        )),
        _ => Err(format!(
            "`{w}` is not a path, keyword or literal Reflex knows"
        )),
    }
}

/// A value starting at `toks[0]`: one token or a bracketed list; returns it and the tokens used.
fn value_at(toks: &[Tok]) -> (String, usize) {
    if toks.first().map(Tok::text) != Some("[") {
        return (
            toks.first().map_or(String::new(), |t| t.text().to_owned()),
            1,
        );
    }
    let end = toks
        .iter()
        .position(|t| t.text() == "]")
        .unwrap_or(toks.len() - 1);
    let list: Vec<String> = toks[..=end].iter().map(|t| t.text().to_owned()).collect();
    (join(&list), end + 1)
}

/// `match("re", ignorecase=true)` (after the `(`) as a Reflex regex string: `match` anchors at
/// the start, `regex`/`search` find anywhere (Reflex's `matches` is an unanchored search).
fn regex_test(toks: &[Tok], test: &str, src: &str) -> Result<(String, usize), String> {
    let Some(Tok::Str(quoted)) = toks.first() else {
        return Err(format!(
            "`is {test}(...)` needs a quoted pattern in `{src}`"
        ));
    };
    let pattern = &quoted[1..quoted.len() - 1];
    let close = toks
        .iter()
        .position(|t| t.text() == ")")
        .ok_or_else(|| format!("unclosed `{test}(` in `{src}`"))?;
    let args: String = toks[1..close].iter().map(Tok::text).collect();
    let ignore_case = args.contains("ignorecase=true") || args.contains("ignorecase=True");
    let mut re = String::new();
    if ignore_case {
        re.push_str("(?i)");
    }
    if test == "match" {
        re.push_str(&format!("^(?:{pattern})"));
    } else {
        re.push_str(pattern);
    }
    Ok((format!("'{re}'"), close + 1))
}

/// An `all:`/`any:` item may name its event (`events.down << event.status == "down"`).
pub(super) fn split_assignment(src: &str) -> (Option<String>, &str) {
    match src.split_once("<<") {
        Some((name, rest)) => {
            let name = name.trim();
            let name = name
                .strip_prefix("events.")
                .or_else(|| name.strip_prefix("facts."));
            (name.map(str::to_owned), rest.trim())
        }
        None => (None, src),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(src: &str) -> String {
        let source = Source::Alertmanager {
            host_path: "labels.instance".into(),
        };
        convert(src, &source).unwrap_or_else(|e| panic!("`{src}`: {e}"))
    }

    #[test]
    fn comparisons_and_booleans_keep_their_words_and_lose_the_alert_wrapper() {
        assert_eq!(
            conv(
                r#"event.alert.labels.severity == "critical" and event.alert.status != 'resolved'"#
            ),
            r#"event.labels.severity == "critical" and event.status != 'resolved'"#
        );
        assert_eq!(
            conv("event.i >= 3 or not (event.i < 1)"),
            "event.i >= 3 or not (event.i < 1)"
        );
        assert_eq!(
            conv(r#"event.alert.labels.job in ["node", "kube"]"#),
            r#"event.labels.job in ["node", "kube"]"#
        );
        assert_eq!(
            conv("event.meta.hosts == 'a'"),
            "event.labels.instance == 'a'"
        );
        assert_eq!(conv("event.ok == True"), "event.ok == true");
    }

    #[test]
    fn is_defined_contains_and_regex_tests_become_reflex_operators() {
        assert_eq!(
            conv("event.alert.labels.pod is defined"),
            "exists(event.labels.pod)"
        );
        assert_eq!(conv("event.x is not defined"), "not exists(event.x)");
        assert_eq!(
            conv(r#"event.tags contains "db""#),
            r#"event.tags contains "db""#
        );
        assert_eq!(
            conv(r#"event.tags not contains "db""#),
            r#"not (event.tags contains "db")"#
        );
        assert_eq!(
            conv(r#"event.msg is match("disk.*full", ignorecase=true)"#),
            "event.msg matches '(?i)^(?:disk.*full)'"
        );
        assert_eq!(
            conv(r#"event.msg is not search("oom")"#),
            "event.msg !~ 'oom'"
        );
    }

    #[test]
    fn a_bare_path_is_a_truth_test() {
        assert_eq!(conv("event.up"), "event.up == true");
        assert_eq!(
            conv("not event.alert.up and event.code not in [301, 302]"),
            "not event.up == true and event.code not in [301, 302]"
        );
        assert_eq!(
            conv("(event.a or event.b) and event.c == 1"),
            "(event.a == true or event.b == true) and event.c == 1"
        );
    }

    #[test]
    fn facts_vars_and_unknown_tests_are_reported_not_guessed() {
        let src = &Source::Other;
        assert!(convert("fact.count > 3", src).unwrap_err().contains("fact"));
        assert!(
            convert("event.x == vars.limit", src)
                .unwrap_err()
                .contains("variable")
        );
        assert!(
            convert("event.x is even", src)
                .unwrap_err()
                .contains("is even")
        );
        assert!(
            convert("event.x == events.first.x", src)
                .unwrap_err()
                .contains("correlate")
        );
    }

    #[test]
    fn templates_lose_the_source_wrapper_and_see_matched_events() {
        let kafka = Source::Kafka { topics: vec![] };
        assert_eq!(
            rewrite_paths("{{ event.body.host }}", &kafka),
            "{{ event.host }}"
        );
        assert_eq!(
            rewrite_paths("{{ events.down.body.host }}", &kafka),
            "{{ match.events.down.host }}"
        );
        assert_eq!(
            split_assignment("events.down << event.up == false"),
            (Some("down".into()), "event.up == false")
        );
    }
}
