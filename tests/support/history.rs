//! A recorded history with known firings for `reflex backtest` (tests/data/backtest/): noise
//! around seeded events for a throttle, a threshold, a correlation and an absence. The seeds sit
//! at fixed minutes after `t0` (away from window edges) and the noise fills the rest, so the
//! expected counts hold for any `total`; [`expected`] states them for the whole history and
//! for the slice [`SLICE`].
//!
//! Seeds (minutes after `t0`):
//! - `crash` of `shop/web` every 45 s from 0:00 to 59:15 (80): `restart-crashlooping` (once
//!   within 10m) fires at 0:00, 10:30, 21:00, 31:30, 42:00, 52:30; the default loop guard (3
//!   within 1h) quarantines the target at the 4th. `shop/api` crashes at 5:00 and 7:00: one firing.
//! - `error` bursts of host `h1` (5 within 8 s) at 12:00, 40:00, 70:00: `page-on-error-burst`
//!   fires 3 times; host `h2` errs every 2 minutes (never 5 within 1m).
//! - `login_failed` then `password_changed` 2 minutes later for u1..u4 at 15, 25, 45, 66;
//!   lone failures of u5 (20:00), u6 (30:30); u7 fails at 50:00 and changes at 62:00 (12 minutes:
//!   only the old 15m window joins them).
//! - `job_started` j1..j5 at 2, 10, 20, 31, 40; `job_finished` j1 at 12, j3 at 35, j5 at 50:
//!   j2 is missed at 40:00 and j4 at 61:00.

use std::process::Output;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

/// The rules a pull request proposes.
pub const NEW: &str = "tests/data/backtest/rules-new";
/// The rules before it.
pub const OLD: &str = "tests/data/backtest/rules-old";

/// Length of the history: noise spreads over it.
pub const SPAN_SECONDS: i64 = 83 * 60;
/// A slice of the history, in seconds after `t0`: [30:10, 65:00].
pub const SLICE: (i64, i64) = (30 * 60 + 10, 65 * 60);

/// The events of the history, oldest first, with their times: `total` events in all.
pub fn events(t0: DateTime<Utc>, total: usize) -> Vec<(DateTime<Utc>, Value)> {
    let mut seeds: Vec<(i64, Value)> = Vec::new();
    let at = |m: i64, s: i64| m * 60 + s;
    for i in 0..80 {
        seeds.push((i * 45, json!({"kind": "crash", "ns": "shop", "app": "web"})));
    }
    for m in [5, 7] {
        seeds.push((
            at(m, 0),
            json!({"kind": "crash", "ns": "shop", "app": "api"}),
        ));
    }
    for m in [12, 40, 70] {
        for s in [0, 2, 4, 6, 8] {
            seeds.push((at(m, s), json!({"kind": "error", "host": "h1"})));
        }
    }
    for m in (1..=81).step_by(2) {
        seeds.push((at(m, 0), json!({"kind": "error", "host": "h2"})));
    }
    for (user, m) in [("u1", 15), ("u2", 25), ("u3", 45), ("u4", 66)] {
        seeds.push((at(m, 0), json!({"kind": "login_failed", "user": user})));
        seeds.push((
            at(m + 2, 0),
            json!({"kind": "password_changed", "user": user}),
        ));
    }
    seeds.push((at(20, 0), json!({"kind": "login_failed", "user": "u5"})));
    seeds.push((at(30, 30), json!({"kind": "login_failed", "user": "u6"})));
    seeds.push((at(50, 0), json!({"kind": "login_failed", "user": "u7"})));
    seeds.push((at(62, 0), json!({"kind": "password_changed", "user": "u7"})));
    for (run, m) in [("j1", 2), ("j2", 10), ("j3", 20), ("j4", 31), ("j5", 40)] {
        seeds.push((at(m, 0), json!({"kind": "job_started", "run": run})));
    }
    for (run, m) in [("j1", 12), ("j3", 35), ("j5", 50)] {
        seeds.push((at(m, 0), json!({"kind": "job_finished", "run": run})));
    }
    let noise = total
        .checked_sub(seeds.len())
        .expect("total covers the seeded events");
    let mut all: Vec<(i64, Value)> = (0..noise)
        .map(|i| {
            // Milliseconds, evenly spread; half a step off so no noise shares a seed's time.
            let ms = (2 * i as i64 + 1) * SPAN_SECONDS * 1000 / (2 * noise as i64);
            (ms, json!({"kind": "noise", "seq": i}))
        })
        .collect();
    all.extend(seeds.into_iter().map(|(s, v)| (s * 1000, v)));
    all.sort_by_key(|(ms, _)| *ms);
    all.into_iter()
        .map(|(ms, v)| (t0 + Duration::milliseconds(ms), v))
        .collect()
}

/// What the report says of one rule: `(rule, firings, [(target, actions)], refused by the
/// loop guard)`.
pub type Expected = (&'static str, u64, Vec<(&'static str, u64)>, u64);

/// What `reflex backtest --rules tests/data/backtest/rules-new` reports per rule, for the whole
/// history (`slice: false`) or for [`SLICE`].
pub fn expected(slice: bool) -> Vec<Expected> {
    if slice {
        vec![
            (
                "restart-crashlooping",
                3,
                vec![("deployment/shop/web", 3)],
                0,
            ),
            (
                "page-on-error-burst",
                1,
                vec![("webhook/https://hooks.example.com/page/h1", 1)],
                0,
            ),
            (
                "lock-account-after-bruteforce",
                1,
                vec![("webhook/https://hooks.example.com/lock/u3", 1)],
                0,
            ),
            (
                "job-never-finished",
                1,
                vec![("webhook/https://hooks.example.com/job/j4", 1)],
                0,
            ),
        ]
    } else {
        vec![
            (
                "restart-crashlooping",
                7,
                vec![("deployment/shop/web", 6), ("deployment/shop/api", 1)],
                3,
            ),
            (
                "page-on-error-burst",
                3,
                vec![("webhook/https://hooks.example.com/page/h1", 3)],
                0,
            ),
            (
                "lock-account-after-bruteforce",
                4,
                vec![
                    ("webhook/https://hooks.example.com/lock/u1", 1),
                    ("webhook/https://hooks.example.com/lock/u2", 1),
                    ("webhook/https://hooks.example.com/lock/u3", 1),
                    ("webhook/https://hooks.example.com/lock/u4", 1),
                ],
                0,
            ),
            (
                "job-never-finished",
                2,
                vec![
                    ("webhook/https://hooks.example.com/job/j2", 1),
                    ("webhook/https://hooks.example.com/job/j4", 1),
                ],
                0,
            ),
        ]
    }
}

/// The seeded differences of `--against tests/data/backtest/rules-old` over the whole history:
/// `(new, gone, changed)` as `(rule, target suffix)` lists.
pub const AGAINST_NEW: [&str; 2] = ["job/j2", "job/j4"];
/// Disappears with the 5m window: the slow pair of u7.
pub const AGAINST_GONE: [&str; 1] = ["lock/u7"];
/// The page path changes from `/alert/` to `/page/` for every burst.
pub const AGAINST_CHANGED: usize = 3;

/// Asserts that a JSON report (`--format json`) gives exactly the expected firings, targets
/// and loop-guard refusals, and `matched` crash events for `restart-crashlooping`.
pub fn assert_report(report: &Value, slice: bool) {
    let rules = report["rules"].as_array().expect("rules");
    for (name, firings, targets, quarantined) in expected(slice) {
        let rule = rules
            .iter()
            .find(|r| r["rule"] == name)
            .unwrap_or_else(|| panic!("rule {name} in {report:#}"));
        assert_eq!(rule["firings"], firings, "{name}: {rule:#}");
        assert_eq!(rule["actions_planned"], firings, "{name}: {rule:#}");
        assert_eq!(rule["distinct_targets"], targets.len(), "{name}: {rule:#}");
        let top: Vec<(String, u64)> = rule["top_targets"]
            .as_array()
            .expect("top targets")
            .iter()
            .map(|t| {
                (
                    t["target"].as_str().unwrap().to_owned(),
                    t["actions"].as_u64().unwrap(),
                )
            })
            .collect();
        let want: Vec<(String, u64)> = targets.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect();
        assert_eq!(top, want, "{name}");
        assert_eq!(
            rule["refused"]["loop_guard"].as_u64().unwrap_or(0),
            quarantined,
            "{name}: {rule:#}"
        );
        assert_eq!(
            rule["would_execute"].as_u64().unwrap(),
            firings - quarantined,
            "{name}: {rule:#}"
        );
        let fired: u64 = rule["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .map(|n| n.as_u64().unwrap())
            .sum();
        assert_eq!(fired, firings, "{name}: the timeline counts every firing");
    }
    let restarts = rules
        .iter()
        .find(|r| r["rule"] == "restart-crashlooping")
        .unwrap();
    let crashes = if slice { 39 } else { 82 };
    assert_eq!(restarts["events_matched"], crashes, "{restarts:#}");
    assert_eq!(
        restarts["throttled"],
        crashes - restarts["firings"].as_u64().unwrap()
    );
}

/// The differences seeded between tests/data/backtest/rules-old and rules-new.
pub fn assert_against(diff: &Value) {
    let suffixes = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let url = e["params"]["url"].as_str().unwrap_or_default();
                url.rsplitn(3, '/')
                    .take(2)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .collect()
    };
    assert_eq!(suffixes(&diff["new"]), AGAINST_NEW, "{diff:#}");
    assert_eq!(suffixes(&diff["gone"]), AGAINST_GONE, "{diff:#}");
    let changed = diff["changed"].as_array().unwrap();
    assert_eq!(changed.len(), AGAINST_CHANGED, "{diff:#}");
    for c in changed {
        assert_eq!(c["rule"], "page-on-error-burst");
        assert_eq!(c["old_params"]["url"], "https://hooks.example.com/alert/h1");
        assert_eq!(c["new_params"]["url"], "https://hooks.example.com/page/h1");
    }
}

/// Asserts the exit code of a `reflex backtest`, showing its stderr otherwise.
pub fn exit_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The JSON report on a command's stdout.
pub fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
