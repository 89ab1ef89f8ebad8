//! The destination host allow-list: which hosts a rendered webhook URL may point at.

/// One allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// `hooks.example.com`: exactly this host.
    Exact(String),
    /// `*.example.com`: any host ending in `.example.com` (not `example.com` itself), stored as
    /// `.example.com`.
    Suffix(String),
}

/// Hosts webhooks may reach. Empty means "any host written literally in a rule": the rule
/// compiler already guarantees the host is literal, so event data cannot choose it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostAllowList {
    patterns: Vec<Pattern>,
}

/// Lower-cases, drops a trailing dot (`example.com.` is the same host) and IPv6 brackets.
fn normalize(host: &str) -> String {
    let host = host.trim().trim_end_matches('.');
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.to_ascii_lowercase()
}

impl HostAllowList {
    /// Parses entries: `host` or `*.suffix`. Returns the offending entry when one is malformed
    /// (a `*` anywhere but a leading `*.`, or an empty entry).
    pub fn parse(entries: &[String]) -> Result<HostAllowList, String> {
        let mut patterns = Vec::with_capacity(entries.len());
        for entry in entries {
            let pattern = match entry.trim().strip_prefix("*.") {
                Some(suffix) => Pattern::Suffix(format!(".{}", normalize(suffix))),
                None => Pattern::Exact(normalize(entry)),
            };
            let body = match &pattern {
                Pattern::Exact(h) => h.as_str(),
                Pattern::Suffix(s) => &s[1..],
            };
            if body.is_empty() || body.contains('*') {
                return Err(entry.clone());
            }
            patterns.push(pattern);
        }
        Ok(HostAllowList { patterns })
    }

    /// True when the list is empty (every literal host is allowed).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// True when `host` may be reached.
    pub fn allows(&self, host: &str) -> bool {
        if self.patterns.is_empty() {
            return true;
        }
        let host = normalize(host);
        self.patterns.iter().any(|p| match p {
            Pattern::Exact(h) => *h == host,
            Pattern::Suffix(s) => host.ends_with(s.as_str()),
        })
    }

    /// The entries, for error messages.
    pub fn describe(&self) -> String {
        if self.patterns.is_empty() {
            return "any host written in a rule".into();
        }
        let names: Vec<String> = self
            .patterns
            .iter()
            .map(|p| match p {
                Pattern::Exact(h) => h.clone(),
                Pattern::Suffix(s) => format!("*{s}"),
            })
            .collect();
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> HostAllowList {
        let owned: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        HostAllowList::parse(&owned).expect("valid list")
    }

    #[test]
    fn exact_entries_match_the_host_case_insensitively_and_nothing_else() {
        let allow = list(&["Hooks.Example.com"]);
        assert!(allow.allows("hooks.example.com"));
        assert!(allow.allows("HOOKS.example.com."));
        assert!(!allow.allows("evil-hooks.example.com"));
        assert!(!allow.allows("hooks.example.com.evil.net"));
    }

    #[test]
    fn a_wildcard_matches_subdomains_but_not_the_apex_or_lookalikes() {
        let allow = list(&["*.example.com"]);
        assert!(allow.allows("a.example.com"));
        assert!(allow.allows("a.b.example.com"));
        assert!(!allow.allows("example.com"));
        assert!(!allow.allows("notexample.com"));
    }

    #[test]
    fn ipv6_hosts_match_with_or_without_brackets() {
        let allow = list(&["[::1]", "127.0.0.1"]);
        assert!(allow.allows("[::1]"));
        assert!(allow.allows("::1"));
        assert!(allow.allows("127.0.0.1"));
        assert!(!allow.allows("127.0.0.2"));
    }

    #[test]
    fn an_empty_list_allows_every_literal_host_and_malformed_entries_are_refused() {
        assert!(list(&[]).allows("anything.example"));
        for bad in ["*", "", "a.*.com", "*.", "*.*.com"] {
            assert_eq!(
                HostAllowList::parse(&[bad.to_string()]),
                Err(bad.to_string()),
                "{bad:?}"
            );
        }
    }
}
