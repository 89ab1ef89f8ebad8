//! Where each part of a rulebook is (`file:line:column`), so every line of the report points
//! at what it is about. The converter walks an untyped value; the positions come from a second,
//! typed read of the same text with serde-saphyr's spans.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_saphyr::{Location, Spanned};

/// A play, as far as positions go.
#[derive(Deserialize)]
struct PlayAt {
    #[serde(default)]
    rules: Vec<Spanned<RuleAt>>,
}

/// A rule's parts the report talks about.
#[derive(Deserialize)]
struct RuleAt {
    condition: Option<Spanned<IgnoredAny>>,
    throttle: Option<Spanned<IgnoredAny>>,
    action: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    actions: Vec<Spanned<IgnoredAny>>,
}

/// The positions of a rulebook's plays and rules.
pub(super) struct Positions {
    file: String,
    /// `None` when the text does not have the shape of a rulebook closely enough for the typed
    /// read (the report then names the part by its index: `plays[0].rules[2].condition`).
    plays: Option<Vec<Spanned<PlayAt>>>,
}

/// Where one rule and its parts are.
pub(super) struct RulePositions {
    /// The rule itself.
    pub rule: String,
    /// Its `condition`.
    pub condition: String,
    /// Its `throttle`.
    pub throttle: String,
    /// Its `action`, or each of its `actions`.
    pub actions: Vec<String>,
}

impl Positions {
    pub(super) fn read(text: &str, file: &str) -> Positions {
        Positions {
            file: file.to_owned(),
            plays: serde_saphyr::from_str(text).ok(),
        }
    }

    fn at(&self, location: Option<&Location>, path: &str) -> String {
        match location {
            Some(l) if l.line() > 0 => format!("{}:{}:{}", self.file, l.line(), l.column()),
            _ => format!("{}:{path}", self.file),
        }
    }

    /// Where play `p` is.
    pub(super) fn play(&self, p: usize) -> String {
        let play = self.plays.as_ref().and_then(|plays| plays.get(p));
        self.at(play.map(|play| &play.referenced), &format!("plays[{p}]"))
    }

    /// Where rule `r` of play `p` and its parts are; a part the rule lacks is placed at the rule.
    pub(super) fn rule(&self, p: usize, r: usize, actions: usize) -> RulePositions {
        let rule = self
            .plays
            .as_ref()
            .and_then(|plays| plays.get(p))
            .and_then(|play| play.value.rules.get(r));
        let path = format!("plays[{p}].rules[{r}]");
        let here = self.at(rule.map(|rule| &rule.referenced), &path);
        let part = |spanned: Option<&Spanned<IgnoredAny>>, name: &str| match spanned {
            Some(s) => self.at(Some(&s.referenced), &format!("{path}.{name}")),
            None if rule.is_some() => here.clone(),
            None => format!("{}:{path}.{name}", self.file),
        };
        let body = rule.map(|rule| &rule.value);
        let actions = (0..actions)
            .map(|i| {
                let one = body.and_then(|b| b.action.as_ref().filter(|_| i == 0));
                let listed = body.and_then(|b| b.actions.get(i));
                match one.or(listed) {
                    Some(s) => self.at(Some(&s.referenced), &format!("{path}.actions[{i}]")),
                    None => part(None, &format!("actions[{i}]")),
                }
            })
            .collect();
        RulePositions {
            condition: part(body.and_then(|b| b.condition.as_ref()), "condition"),
            throttle: part(body.and_then(|b| b.throttle.as_ref()), "throttle"),
            actions,
            rule: here,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULEBOOK: &str = "- name: p\n  hosts: all\n  sources: []\n  rules:\n    - name: a\n      condition: event.i == 1\n      actions:\n        - debug: {}\n        - run_playbook: {name: x}\n";

    #[test]
    fn each_part_is_placed_at_its_line_and_column() {
        let positions = Positions::read(RULEBOOK, "book.yml");
        let rule = positions.rule(0, 0, 2);
        assert_eq!(rule.condition, "book.yml:6:18");
        assert_eq!(rule.actions, ["book.yml:8:11", "book.yml:9:11"]);
        // No throttle: the rule's own position.
        assert_eq!(rule.throttle, rule.rule);
        assert!(rule.rule.starts_with("book.yml:5:"), "{}", rule.rule);
    }

    #[test]
    fn a_rulebook_of_another_shape_is_placed_by_index() {
        let positions = Positions::read("- rules: [1, 2]\n", "odd.yml");
        let rule = positions.rule(0, 1, 1);
        assert_eq!(rule.condition, "odd.yml:plays[0].rules[1].condition");
        assert_eq!(rule.actions, ["odd.yml:plays[0].rules[1].actions[0]"]);
    }
}
