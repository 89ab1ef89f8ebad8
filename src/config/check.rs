//! `reflex config check`: every problem of a configuration file at once, each at its
//! `file:line:column`, the way rule files are reported.
//!
//! Serde stops at the first thing it cannot read (an unknown key, a bad duration, a wrong
//! type). To report them all, the check parses, records the located problem, turns the line it
//! is on (and the block under it) into blank comments — so every other line keeps its number —
//! and parses again. Once the file parses, [`Config::validate`] finds the values that make no
//! sense together, and each is located at the value of the field it names.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};

use super::{Config, ENV_DATABASE_URL, ENV_KAFKA_BOOTSTRAP_SERVERS, ENV_KAFKA_SASL_PASSWORD};
use crate::rules::diagnostic::{Diagnostic, Diagnostics};

/// Most problems serde is asked to find in one file: each costs a parse of the file, and a
/// file with more has a bigger problem than any list would explain (a wrong file, say).
const MAX_PARSE_PROBLEMS: usize = 100;

/// The fields an environment variable overrides: a problem there is the variable's, not the
/// file's.
const ENV_FIELDS: [(&str, &str); 3] = [
    ("kafka.bootstrap_servers", ENV_KAFKA_BOOTSTRAP_SERVERS),
    ("store.url", ENV_DATABASE_URL),
    ("kafka.client", ENV_KAFKA_SASL_PASSWORD),
];

/// Checks configuration `text` read from `file`, with the environment overrides `lookup`
/// returns applied as `reflex run` applies them. Returns the configuration when nothing is
/// wrong, else every problem, in reading order.
pub fn check(
    text: &str,
    file: &Path,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Config, Vec<Diagnostic>> {
    let mut problems = Diagnostics::new();
    problems.set_file(file);
    // Blocks are taken from the file as written: an elided line reads as a comment, which
    // would end a block early.
    let original: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut lines = original.clone();
    let mut elided = vec![false; lines.len()];
    let at = value_locations(text);
    let mut parsed = None;
    for _ in 0..MAX_PARSE_PROBLEMS {
        let current = lines.join("\n");
        if !super::has_content(&current) {
            parsed = Some(Config::default());
            break;
        }
        let mut round = Diagnostics::new();
        round.set_file(file);
        if let Some(config) = crate::rules::load::parse_yaml::<Config>(&current, &mut round) {
            parsed = Some(config);
            break;
        }
        let Some(problem) = round.into_vec().pop() else {
            break;
        };
        let line = usize::try_from(problem.line).unwrap_or(0);
        // A section emptied by earlier elisions reads as `null`; that is not the file's fault.
        let consequence = line > 0 && block_of(&original, line - 1).any(|i| elided[i]);
        if !consequence {
            // Name the field whose value it is, when the position is a value's (an unknown
            // key names itself, and its position can be its section's value too).
            let field = at
                .iter()
                .find(|(_, l)| (l.line(), l.column()) == (problem.line, problem.column))
                .filter(|_| !problem.message.starts_with("unknown field"));
            let message = match field {
                Some((field, _)) => format!("{field}: {}", problem.message),
                None => problem.message,
            };
            problems.error_at(problem.line, problem.column, message, problem.hint);
        }
        // Without a line, or on a line already blank (a syntax error the elision cannot
        // remove), parsing again would find the same problem: the rest stays unchecked.
        if line == 0 || line > lines.len() || elided[line - 1] {
            break;
        }
        for i in std::iter::once(line - 1)
            .chain(block_of(&original, line - 1))
            .collect::<Vec<_>>()
        {
            lines[i] = "#".to_owned();
            elided[i] = true;
        }
    }
    let found_while_parsing = !problems.is_empty();
    match parsed {
        Some(mut config) => {
            config.apply_env(&lookup);
            if let Err(super::Error::Invalid { problems: invalid }) = config.validate() {
                for invalid in invalid {
                    locate(&mut problems, &at, file, &invalid, &lookup);
                }
            }
            let mut problems = problems.into_vec();
            if problems.is_empty() && !found_while_parsing {
                return Ok(config);
            }
            problems.sort_by_key(|p| (p.file.clone(), p.line, p.column));
            Err(problems)
        }
        None => Err(problems.into_vec()),
    }
}

/// Records a problem of [`Config::validate`] at the value of its field (or the closest
/// enclosing section the file has; `0:0` when the file has none of it), or at the environment
/// variable that set the field.
fn locate(
    problems: &mut Diagnostics,
    at: &BTreeMap<String, Location>,
    file: &Path,
    problem: &super::Problem,
    lookup: &impl Fn(&str) -> Option<String>,
) {
    let from_env = ENV_FIELDS.iter().find(|(field, env)| {
        *field == problem.field && lookup(env).is_some_and(|v| !v.trim().is_empty())
    });
    if let Some((_, env)) = from_env {
        problems.set_file(&PathBuf::from(format!("${env}")));
        problems.error_at(0, 0, problem.to_string(), None);
        problems.set_file(file);
        return;
    }
    let mut path = problem.field;
    let location = loop {
        if let Some(location) = at.get(path) {
            break Some(*location);
        }
        match path.rsplit_once('.') {
            Some((parent, _)) => path = parent,
            None => break None,
        }
    };
    let (line, column) = location.map_or((0, 0), |l| (l.line(), l.column()));
    problems.error_at(line, column, problem.to_string(), None);
}

/// Indices of the lines of the block under line `index` (more indented, or blank, up to the
/// next line that is not).
fn block_of(lines: &[String], index: usize) -> impl Iterator<Item = usize> + '_ {
    let indent = |line: &str| line.len() - line.trim_start().len();
    let own = lines.get(index).map_or(0, |l| indent(l));
    let is_inside = move |line: &String| {
        let trimmed = line.trim_start();
        trimmed.is_empty() || trimmed.starts_with('#') || indent(line) > own
    };
    let end = lines
        .iter()
        .enumerate()
        .skip(index + 1)
        .find(|(_, line)| !is_inside(line))
        .map_or(lines.len(), |(i, _)| i);
    // Trailing blank lines and comments belong to what follows, not to this block.
    let end = (index + 1..end)
        .rev()
        .find(|&i| !lines[i].trim().is_empty() && !lines[i].trim_start().starts_with('#'))
        .map_or(index + 1, |i| i + 1);
    index + 1..end
}

/// Where the value of each field of `text` is, by dotted path (`kafka.topics.events`); empty
/// when the text is not YAML.
fn value_locations(text: &str) -> BTreeMap<String, Location> {
    let mut at = BTreeMap::new();
    if let Ok(root) = serde_saphyr::from_str::<Node>(text) {
        root.index("", &mut at);
    }
    at
}

/// A YAML document reduced to what locating needs: mapping keys and where each value starts.
enum Node {
    Map(Vec<(String, Spanned<Node>)>),
    Seq,
    Scalar,
}

impl Node {
    fn index(&self, prefix: &str, at: &mut BTreeMap<String, Location>) {
        if let Node::Map(entries) = self {
            for (key, value) in entries {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                at.insert(path.clone(), value.referenced);
                value.value.index(&path, at);
            }
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Key>()? {
            entries.push((key.0, map.next_value::<Spanned<Node>>()?));
        }
        Ok(Node::Map(entries))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Node::Seq)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_str<E>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
}

/// A mapping key as text, whatever scalar it is written as.
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar key")
            }
            fn visit_str<E>(self, v: &str) -> Result<Key, E> {
                Ok(Key(v.to_owned()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
        }
        d.deserialize_any(KeyVisitor)
    }
}

#[cfg(test)]
mod tests;
