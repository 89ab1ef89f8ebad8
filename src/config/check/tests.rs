use super::*;

fn problems(text: &str, env: &[(&str, &str)]) -> Vec<(u64, u64, String)> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    check(text, Path::new("reflex.yaml"), lookup)
        .expect_err("problems expected")
        .into_iter()
        .map(|p| (p.line, p.column, p.message))
        .collect()
}

#[test]
fn every_class_of_problem_is_reported_at_once_in_reading_order() {
    let text = "kafka:\n  bootstrap_server: typo:9092\nconsumer:\n  retry_min_delay: 5x\n  \
                partition_queue: lots\nactions:\n  max_concurrent: 0\nstore:\n  url: mysql://x/y\n";
    let found = problems(text, &[]);
    let at: Vec<(u64, u64)> = found.iter().map(|(l, c, _)| (*l, *c)).collect();
    assert_eq!(at, [(2, 3), (4, 20), (5, 20), (7, 19), (9, 8)], "{found:?}");
    for (i, needle) in [
        "unknown field `bootstrap_server`",
        "consumer.retry_min_delay: unknown unit `x`",
        "consumer.partition_queue: invalid u64",
        "actions.max_concurrent: must be between 1 and 256",
        "store.url: `mysql://x/y` has an unknown scheme",
    ]
    .iter()
    .enumerate()
    {
        assert!(found[i].2.contains(needle), "{needle}: {found:?}");
    }
}

#[test]
fn a_section_emptied_by_its_own_mistakes_is_not_reported_again() {
    // Both lines of `consumer:` are wrong; with them set aside the section is empty, which is
    // not a third problem.
    let found = problems(
        "consumer:\n  partition_queue: x\n  commit_interval: 1y\n",
        &[],
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!((found[0].0, found[1].0), (2, 3), "{found:?}");
}

#[test]
fn a_value_set_by_the_environment_is_blamed_on_the_variable() {
    let found = check("", Path::new("reflex.yaml"), |name| {
        (name == ENV_DATABASE_URL).then(|| "mysql://x/y".to_owned())
    })
    .expect_err("a bad DATABASE_URL");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].file, PathBuf::from("$DATABASE_URL"));
    assert!(found[0].message.starts_with("store.url:"), "{found:?}");
}

#[test]
fn a_problem_of_an_absent_field_points_at_its_section_or_nowhere() {
    let found = problems("pipeline:\n  max_depth: 16\nactions:\n  timeout: 5m\n", &[]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].0, found[0].1),
        (2, 3),
        "at `pipeline:`'s value: {found:?}"
    );
    assert!(found[0].2.contains("claim_lease_secs"), "{found:?}");
}

#[test]
fn malformed_yaml_is_one_located_problem() {
    let found = problems("kafka:\n  bootstrap_servers: 'unclosed\n", &[]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].0 >= 2, "{found:?}");
}

#[test]
fn a_valid_file_and_an_empty_one_give_the_configuration() {
    let config = check(
        "kafka:\n  bootstrap_servers: b:9092\n",
        Path::new("x"),
        |_| None,
    )
    .expect("valid");
    assert_eq!(config.kafka.bootstrap_servers, "b:9092");
    assert_eq!(
        check("# only a comment\n", Path::new("x"), |_| None).expect("valid"),
        Config::default()
    );
}
