//! Rendering compiled conditions back in the expression language, so `reflex replay --explain`
//! and `reflex test` can show what a rule tests however it was written.

use std::fmt;

use serde_json::Value;

use super::explain::{not, quote};
use super::leaf::{Leaf, Test};
use super::{Condition, Node};
use crate::rules::duration;

impl Node {
    fn write(&self, f: &mut fmt::Formatter<'_>, parent_binds_tighter: bool) -> fmt::Result {
        match self {
            Node::Const(value) => write!(f, "{value}"),
            Node::Leaf(leaf) => write!(f, "{leaf}"),
            Node::Not(inner) => {
                f.write_str("not ")?;
                match **inner {
                    Node::Leaf(_) | Node::Const(_) | Node::Not(_) => inner.write(f, true),
                    _ => {
                        f.write_str("(")?;
                        inner.write(f, false)?;
                        f.write_str(")")
                    }
                }
            }
            Node::All(items) | Node::Any(items) => {
                let (sep, is_all) = match self {
                    Node::All(_) => (" and ", true),
                    _ => (" or ", false),
                };
                // `and` binds tighter than `or`: an `or` inside an `and` needs parentheses.
                let parens = parent_binds_tighter;
                if parens {
                    f.write_str("(")?;
                }
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    item.write(f, is_all && matches!(item, Node::Any(_)))?;
                }
                if parens {
                    f.write_str(")")?;
                }
                Ok(())
            }
        }
    }
}

/// The condition in the expression language (`a == 1 and (b > 2 or not exists(c))`), whichever
/// form it was written in.
impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.root.write(f, false)
    }
}

/// Renders the leaf in the expression language (`labels.severity in ["critical"]`), so
/// `reflex replay --explain` can show what a rule tests however it was written.
impl fmt::Display for Leaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.ignore_case {
            format!("lower({})", self.path)
        } else {
            self.path.to_string()
        };
        let n = self.negated;
        match &self.test {
            Test::Equals(lit) => {
                write!(f, "{path} {} {}", if n { "!=" } else { "==" }, lit.value)
            }
            Test::In(lits) => {
                let items: Vec<String> = lits.iter().map(|l| l.value.to_string()).collect();
                write!(
                    f,
                    "{path} {} [{}]",
                    if n { "not in" } else { "in" },
                    items.join(", ")
                )
            }
            Test::Exists => write!(f, "{}exists({path})", not(n)),
            Test::Matches(re) => write!(
                f,
                "{path} {} {}",
                if n { "!~" } else { "=~" },
                Value::String(re.as_str().to_owned())
            ),
            Test::Contains(lit, _) => wrap(f, n, format_args!("{path} contains {}", lit.value)),
            Test::StartsWith(a) => wrap(f, n, format_args!("{path} startswith {}", quote(&a.text))),
            Test::EndsWith(a) => wrap(f, n, format_args!("{path} endswith {}", quote(&a.text))),
            Test::Compare(op, bound) => wrap(
                f,
                n,
                format_args!("{path} {} {}", op.symbol(), bound.render()),
            ),
            Test::OlderThan(d) => wrap(
                f,
                n,
                format_args!("{path} older_than {}", duration::format(*d)),
            ),
            Test::NewerThan(d) => wrap(
                f,
                n,
                format_args!("{path} newer_than {}", duration::format(*d)),
            ),
        }
    }
}

fn wrap(f: &mut fmt::Formatter<'_>, negated: bool, inner: fmt::Arguments<'_>) -> fmt::Result {
    if negated {
        write!(f, "not ({inner})")
    } else {
        write!(f, "{inner}")
    }
}
