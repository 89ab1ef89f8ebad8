//! Unit tests of the metrics registry and its encoding.
use super::*;

#[test]
fn metrics_show_one_readiness_gauge_per_dependency() {
    let metrics = Metrics::default();
    metrics.set_ready(Dependency::Kafka, true);
    metrics.set_ready(Dependency::Kubernetes, false);
    metrics.set_ready(Dependency::Store, true);
    let text = metrics.encode();
    assert!(
        text.contains("reflex_dependency_ready{dependency=\"kafka\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("reflex_dependency_ready{dependency=\"kubernetes\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("reflex_dependency_ready{dependency=\"store\"} 1"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[test]
fn action_outcomes_are_counted_by_kind_and_status_with_a_duration() {
    let metrics = Metrics::default();
    metrics.action("restart", "succeeded", Some(Duration::from_millis(3)));
    metrics.action("restart", "succeeded", Some(Duration::from_millis(5)));
    metrics.action("restart", "duplicate", None);
    let text = metrics.encode();
    assert!(
        text.contains("reflex_actions_total{kind=\"restart\",status=\"succeeded\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("reflex_actions_total{kind=\"restart\",status=\"duplicate\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("reflex_action_duration_seconds_count{kind=\"restart\"} 2"),
        "{text}"
    );
}

#[test]
fn process_stat_fields_are_counted_after_the_last_parenthesis() {
    // A command name with a space and a parenthesis, as `comm` may hold.
    let text = "4242 (reflex (x) y) S 1 4242 4242 0 -1 4194560 2139 0 0 0 250 75 0 0 20 0 \
                9 0 123456 987654321 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 \
                0 0 0 0 0\n";
    let stat = process::parse_stat(text).expect("parses");
    assert_eq!(
        stat,
        process::Stat {
            cpu_seconds: 3.25,
            start_after_boot_seconds: 1234.56,
            virtual_memory_bytes: 987_654_321,
            threads: 9,
        }
    );
    assert_eq!(process::parse_stat("4242 (cut short) S 1 2"), None);
    assert_eq!(process::parse_stat(""), None);
}

#[test]
fn boot_time_resident_memory_and_the_fd_limit_come_from_their_proc_files() {
    let stat = "cpu  1 2 3\nintr 5\nbtime 1796402503\nprocesses 9\n";
    assert_eq!(process::parse_boot_time(stat), Some(1_796_402_503));
    assert_eq!(process::parse_boot_time("cpu 1\n"), None);
    let status = "Name:\treflex\nVmPeak:\t  9000 kB\nVmRSS:\t    2096 kB\nThreads:\t9\n";
    assert_eq!(process::parse_resident_bytes(status), Some(2096 * 1024));
    let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                  Max cpu time              unlimited            unlimited            seconds   \n\
                  Max open files            20000                524288               files     \n";
    assert_eq!(process::parse_max_fds(limits), Some(20_000));
    let unlimited = limits.replace("20000 ", "unlimited");
    assert_eq!(process::parse_max_fds(&unlimited), None);
}

#[test]
fn the_scrape_has_unprefixed_process_metrics_and_the_build_info() {
    let text = Metrics::default().encode();
    for line in [
        "# TYPE process_cpu_seconds counter",
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_virtual_memory_bytes ",
        "process_open_fds ",
        "process_max_fds ",
        "process_start_time_seconds ",
    ] {
        assert!(text.contains(line), "no `{line}` in:\n{text}");
    }
    let build = format!(
        "reflex_build_info{{version=\"{}\",commit=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        crate::build_info::build_info().commit
    );
    assert!(text.contains(&build), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[test]
fn a_refused_reload_sets_the_gauge_to_0_and_the_time_it_was_tried() {
    let metrics = Metrics::default();
    let at = chrono::DateTime::from_timestamp_millis(1_796_402_503_250).expect("valid time");
    metrics.rules_reloaded(true, at);
    let text = metrics.encode();
    assert!(
        text.contains("reflex_rules_last_reload_successful 1"),
        "{text}"
    );
    metrics.rules_reloaded(false, at + chrono::Duration::seconds(10));
    let text = metrics.encode();
    assert!(
        text.contains("reflex_rules_last_reload_successful 0"),
        "{text}"
    );
    assert!(
        text.contains("reflex_rules_last_reload_timestamp_seconds 1796402513.25"),
        "{text}"
    );
}
