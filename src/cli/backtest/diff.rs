//! `--against OLD_DIR`: the planned actions of two rule sets over the same events, matched by
//! rule, event id and action index; only the differences are reported — actions that are new,
//! actions that disappear, and actions whose kind or parameters change.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::report::html::escape;
use super::simulate::Planned;

/// Differences listed per kind in the text and HTML output; JSON lists them all.
const SHOWN: usize = 100;

/// The differences between the old and the new rule set.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    /// Events both rule sets ran on.
    pub events: u64,
    /// Actions the new rules plan and the old did not.
    pub new: Vec<Entry>,
    /// Actions the old rules planned and the new do not.
    pub gone: Vec<Entry>,
    /// Actions both plan, with a different kind or parameters.
    pub changed: Vec<Change>,
}

/// One planned action.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The rule.
    pub rule: String,
    /// The triggering event.
    pub event_id: String,
    /// Position of the action in the rule.
    pub action_index: usize,
    /// When (event time).
    pub at: DateTime<Utc>,
    /// Its kind.
    pub kind: &'static str,
    /// Its rendered parameters.
    pub params: Value,
}

/// An action both rule sets plan, differently.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// The rule.
    pub rule: String,
    /// The triggering event.
    pub event_id: String,
    /// Position of the action in the rule.
    pub action_index: usize,
    /// When (event time).
    pub at: DateTime<Utc>,
    /// Kind under the old rules.
    pub old_kind: &'static str,
    /// Kind under the new rules.
    pub new_kind: &'static str,
    /// Parameters under the old rules.
    pub old_params: Value,
    /// Parameters under the new rules.
    pub new_params: Value,
}

type Key = (String, String, usize);

impl Diff {
    /// Compares the planned actions of the old and the new rules.
    pub fn new(events: u64, old: Vec<Planned>, new: Vec<Planned>) -> Self {
        let mut by_key: BTreeMap<Key, (Vec<Planned>, Vec<Planned>)> = BTreeMap::new();
        for p in old {
            by_key.entry(key(&p)).or_default().0.push(p);
        }
        for p in new {
            by_key.entry(key(&p)).or_default().1.push(p);
        }
        let mut diff = Diff {
            events,
            new: Vec::new(),
            gone: Vec::new(),
            changed: Vec::new(),
        };
        for (_, (olds, news)) in by_key {
            let paired = olds.len().min(news.len());
            for (o, n) in olds.iter().zip(&news) {
                if o.kind != n.kind || o.params != n.params {
                    diff.changed.push(Change {
                        rule: n.rule.clone(),
                        event_id: n.event_id.clone(),
                        action_index: n.action_index,
                        at: n.at,
                        old_kind: o.kind,
                        new_kind: n.kind,
                        old_params: o.params.clone(),
                        new_params: n.params.clone(),
                    });
                }
            }
            diff.gone
                .extend(olds.into_iter().skip(paired).map(Entry::from));
            diff.new
                .extend(news.into_iter().skip(paired).map(Entry::from));
        }
        for list in [&mut diff.new, &mut diff.gone] {
            list.sort_by(|a, b| (a.at, &a.rule, &a.event_id).cmp(&(b.at, &b.rule, &b.event_id)));
        }
        diff.changed
            .sort_by(|a, b| (a.at, &a.rule, &a.event_id).cmp(&(b.at, &b.rule, &b.event_id)));
        diff
    }

    /// No difference at all.
    pub fn is_empty(&self) -> bool {
        self.new.is_empty() && self.gone.is_empty() && self.changed.is_empty()
    }

    /// Per rule: (new, gone, changed) counts.
    fn per_rule(&self) -> BTreeMap<&str, [usize; 3]> {
        let mut counts: BTreeMap<&str, [usize; 3]> = BTreeMap::new();
        for e in &self.new {
            counts.entry(&e.rule).or_default()[0] += 1;
        }
        for e in &self.gone {
            counts.entry(&e.rule).or_default()[1] += 1;
        }
        for c in &self.changed {
            counts.entry(&c.rule).or_default()[2] += 1;
        }
        counts
    }

    /// The differences as text, for a person or a pull-request comment.
    pub fn text(&self) -> String {
        let mut out = String::new();
        if self.is_empty() {
            let _ = writeln!(
                out,
                "no difference: both rule sets plan the same actions for these {} events",
                self.events
            );
            return out;
        }
        let _ = writeln!(
            out,
            "over {} events: {} new action(s), {} disappeared, {} changed",
            self.events,
            self.new.len(),
            self.gone.len(),
            self.changed.len()
        );
        for (rule, [n, g, c]) in self.per_rule() {
            let _ = writeln!(out, "  rule {rule}: +{n} -{g} ~{c}");
        }
        let line = |sign: char, e: &Entry| {
            format!(
                "{sign} {} {} #{} {} on event {}: {}",
                e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                e.rule,
                e.action_index,
                e.kind,
                e.event_id,
                e.params
            )
        };
        for (sign, list) in [('+', &self.new), ('-', &self.gone)] {
            for e in list.iter().take(SHOWN) {
                let _ = writeln!(out, "{}", line(sign, e));
            }
            more(&mut out, list.len());
        }
        for c in self.changed.iter().take(SHOWN) {
            let _ = writeln!(
                out,
                "~ {} {} #{} on event {}: {} {} -> {} {}",
                c.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                c.rule,
                c.action_index,
                c.event_id,
                c.old_kind,
                c.old_params,
                c.new_kind,
                c.new_params
            );
        }
        more(&mut out, self.changed.len());
        out
    }

    /// The differences as a self-contained HTML page.
    pub fn html(&self) -> String {
        let mut out = String::from(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>Reflex backtest: differences</title><style>\
             body{font-family:system-ui,sans-serif;margin:2em}td,th{border:1px solid #ccc;\
             padding:.3em .6em;text-align:left}table{border-collapse:collapse}\
             code{white-space:pre-wrap}</style></head><body>\n<h1>Reflex backtest: differences</h1>\n",
        );
        let _ = writeln!(
            out,
            "<p>Over {} events: {} new, {} disappeared, {} changed.</p>",
            self.events,
            self.new.len(),
            self.gone.len(),
            self.changed.len()
        );
        for (title, id, list) in [
            ("New", "new", &self.new),
            ("Disappeared", "gone", &self.gone),
        ] {
            let _ = writeln!(
                out,
                "<h2>{title}</h2><table id=\"{id}\"><tr><th>time</th><th>rule</th><th>action</th>\
                 <th>event</th><th>parameters</th></tr>"
            );
            for e in list.iter().take(SHOWN) {
                let _ = writeln!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>#{} {}</td><td>{}</td><td><code>{}</code></td></tr>",
                    e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    escape(&e.rule),
                    e.action_index,
                    e.kind,
                    escape(&e.event_id),
                    escape(&e.params.to_string())
                );
            }
            out.push_str("</table>\n");
        }
        out.push_str(
            "<h2>Changed</h2><table id=\"changed\"><tr><th>time</th><th>rule</th><th>event</th>\
             <th>old</th><th>new</th></tr>\n",
        );
        for c in self.changed.iter().take(SHOWN) {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{} #{}</td><td>{}</td><td><code>{} {}</code></td>\
                 <td><code>{} {}</code></td></tr>",
                c.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                escape(&c.rule),
                c.action_index,
                escape(&c.event_id),
                c.old_kind,
                escape(&c.old_params.to_string()),
                c.new_kind,
                escape(&c.new_params.to_string())
            );
        }
        out.push_str("</table></body></html>\n");
        out
    }
}

fn key(p: &Planned) -> Key {
    (p.rule.clone(), p.event_id.clone(), p.action_index)
}

fn more(out: &mut String, len: usize) {
    if len > SHOWN {
        let _ = writeln!(
            out,
            "  … and {} more (--format json lists every one)",
            len - SHOWN
        );
    }
}

impl From<Planned> for Entry {
    fn from(p: Planned) -> Self {
        Self {
            rule: p.rule,
            event_id: p.event_id,
            action_index: p.action_index,
            at: p.at,
            kind: p.kind,
            params: p.params,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn planned(rule: &str, event: &str, index: usize, params: Value) -> Planned {
        Planned {
            rule: rule.into(),
            event_id: event.into(),
            action_index: index,
            kind: "log",
            params,
            at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn actions_are_matched_by_rule_event_and_index() {
        let old = vec![
            planned("a", "e1", 0, json!(1)),
            planned("a", "e2", 0, json!(1)),
            planned("b", "e1", 0, json!(1)),
        ];
        let new = vec![
            planned("a", "e1", 0, json!(1)),
            planned("a", "e2", 0, json!(2)),
            planned("b", "e1", 1, json!(1)),
        ];
        let diff = Diff::new(2, old, new);
        assert_eq!(diff.changed.len(), 1);
        assert_eq!(diff.changed[0].event_id, "e2");
        assert_eq!((diff.new.len(), diff.gone.len()), (1, 1));
        assert_eq!(diff.new[0].action_index, 1);
        assert_eq!(diff.gone[0].action_index, 0);
        assert!(Diff::new(0, vec![], vec![]).is_empty());
    }
}
