//! Unit tests of the error classification and the conflict retry loop.

use super::*;

fn status(code: u16, reason: &str) -> kube::Error {
    kube::Error::Api(Box::new(kube::core::Status {
        code,
        reason: reason.to_owned(),
        message: format!("status {code}"),
        ..Default::default()
    }))
}

fn op(namespace: Option<&str>) -> Op {
    Op {
        verb: "patch",
        resource: "deployments/scale".into(),
        group: "apps".into(),
        namespace: namespace.map(str::to_owned),
        what: "apps/v1 Deployment shop/web".into(),
    }
}

#[test]
fn forbidden_names_verb_resource_and_namespace_and_is_permanent() {
    let err = op(Some("shop")).classify(status(403, "Forbidden"));
    let text = err.to_string();
    assert!(
        text.starts_with(
            "reflex is not allowed to `patch` `deployments/scale` (API group `apps`) \
             in namespace `shop`: add this to its Role"
        ),
        "{text}"
    );
    assert!(!err.retryable());
    let cluster = op(None).classify(status(403, "Forbidden")).to_string();
    assert!(
        cluster.contains("cluster-wide: add this to its ClusterRole"),
        "{cluster}"
    );
}

#[test]
fn server_errors_and_throttling_are_retryable_client_errors_are_not() {
    for code in [429, 500, 503, 504] {
        assert!(op(None).classify(status(code, "")).retryable(), "{code}");
    }
    for code in [400, 404, 422] {
        assert!(!op(None).classify(status(code, "")).retryable(), "{code}");
    }
    assert!(matches!(
        op(None).classify(status(409, "AlreadyExists")),
        Error::AlreadyExists { .. }
    ));
    assert!(matches!(
        op(None).classify(status(409, "Conflict")),
        Error::Conflict { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn conflicts_are_retried_a_bounded_number_of_times() {
    let conflict = || Error::Conflict {
        what: "x".into(),
        attempts: 1,
    };
    let mut calls = 0;
    let result: Result<()> = retry_conflicts!("x", async {
        calls += 1;
        Err(conflict())
    });
    assert_eq!(calls, MAX_CONFLICT_ATTEMPTS);
    match result {
        Err(e @ Error::Conflict { attempts, .. }) => {
            assert_eq!(attempts, MAX_CONFLICT_ATTEMPTS);
            assert!(e.retryable());
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let mut calls = 0;
    let result: Result<u32> = retry_conflicts!("x", async {
        calls += 1;
        if calls < 3 {
            Err(conflict())
        } else {
            Ok(calls)
        }
    });
    assert_eq!(result.ok(), Some(3));
}

#[test]
fn hand_built_names_cannot_address_another_path() {
    for bad in ["", "..", "a/b", "a%2Fb", "a\nb"] {
        assert!(
            check_name(ActionKind::Delete, "target.name", bad).is_err(),
            "{bad:?}"
        );
    }
    assert!(check_name(ActionKind::Delete, "target.name", "web-1.a").is_ok());
}
