//! Webhook action tests.

use serde_json::json;

use super::*;

#[test]
fn webhook_renders_method_url_headers_and_a_structural_json_body() {
    let out = render(
        "actions:\n  - webhook:\n      method: put\n      url: \"https://hooks.example.com/teams/{{ event.team | urlencode }}?rule={{ rule.name }}\"\n      headers: {X-Event: \"{{ meta.id }}\"}\n      body:\n        text: \"{{ event.msg }}\"\n        count: \"{{ match.count }}\"\n        labels: \"{{ event.labels }}\"\n        fixed: [1, two]\n",
        json!({"team": "pay ments", "msg": "a \"quoted\"\nline", "labels": {"app": "web"}}),
    )
    .unwrap();
    assert_eq!(out["method"], json!("PUT"));
    assert_eq!(
        out["url"],
        json!("https://hooks.example.com/teams/pay%20ments?rule=test-rule")
    );
    assert_eq!(
        out["headers"],
        json!({"X-Event": "fp-1/2024-05-01T12:00:00Z/firing"})
    );
    assert_eq!(
        out["body"],
        json!({"text": "a \"quoted\"\nline", "count": 3, "labels": {"app": "web"}, "fixed": [1, "two"]})
    );
    // The body survives a JSON round trip unchanged: event data cannot break the document.
    let encoded = serde_json::to_string(&out["body"]).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&encoded).unwrap(),
        out["body"]
    );
    assert_eq!(out["timeout_ms"], json!(10_000));
    assert_eq!(out["retries"], json!(3));
    assert_eq!(out["success_status"], json!([{"from": 200, "to": 299}]));
}

#[test]
fn webhook_host_must_be_literal() {
    let diags = diagnostics("actions:\n  - webhook: {url: \"https://{{ event.host }}/x\"}\n");
    find(&diags, "host of a webhook URL must be literal");
    let diags = diagnostics(
        "actions:\n  - webhook: {url: \"https://hooks.example.com{{ event.path }}\"}\n",
    );
    find(&diags, "host of a webhook URL must be literal");
    let diags = diagnostics("actions:\n  - webhook: {url: \"{{ event.url }}\"}\n");
    find(&diags, "must start with `http://` or `https://`");
    assert!(
        compile(
            "actions:\n  - webhook: {url: \"https://hooks.example.com:8443/{{ event.path }}\"}\n"
        )
        .is_ok()
    );
    assert!(
        compile("actions:\n  - webhook: {url: \"http://[::1]:8080/{{ event.path }}\"}\n").is_ok()
    );
    assert!(compile("actions:\n  - webhook: {url: \"http://[::1]/x\"}\n").is_ok());
}

#[test]
fn webhook_url_constants_are_validated_at_load() {
    let diags = diagnostics("actions:\n  - webhook: {url: \"ftp://x/y\"}\n");
    find(&diags, "scheme `ftp`");
    let diags = diagnostics("actions:\n  - webhook: {url: \"https://user:pw@x.example/\"}\n");
    find(&diags, "credentials in a webhook URL");
    let diags = diagnostics("actions:\n  - webhook: {url: \"https://x.example:99999/\"}\n");
    find(&diags, "not a valid host[:port]");
    let diags = diagnostics("actions:\n  - webhook: {url: \"https://x.example/a b\"}\n");
    find(&diags, "contains ' '");
}

#[test]
fn webhook_rendered_urls_and_headers_reject_whitespace_and_newlines() {
    let err = render(
        "actions:\n  - webhook: {url: \"https://x.example/{{ event.p }}\"}\n",
        json!({"p": "a b"}),
    )
    .unwrap_err();
    assert!(err.to_string().contains("urlencode"), "{err}");
    let err = render(
        "actions:\n  - webhook: {url: \"https://x.example/\", headers: {X-A: \"{{ event.v }}\"}}\n",
        json!({"v": "ok\r\nX-Injected: 1"}),
    )
    .unwrap_err();
    assert!(
        err.to_string().starts_with("parameter `headers.X-A`"),
        "{err}"
    );
}

#[test]
fn webhook_header_names_are_checked() {
    let diags = diagnostics(
        "actions:\n  - webhook: {url: \"https://x.example/\", headers: {\"Bad Name\": x, Host: y}}\n",
    );
    find(&diags, "`Bad Name` is not a valid header name");
    find(&diags, "`Host` is managed by the HTTP client");
}

#[test]
fn webhook_secrets_are_references_never_values() {
    let out = render(
        "actions:\n  - webhook:\n      url: https://x.example/\n      secret_headers: {Authorization: {env: PAGER_TOKEN}}\n      body_text: \"{{ event.msg }}\"\n      hmac: {secret: {file: /etc/reflex/hmac}}\n",
        json!({"msg": "hi"}),
    )
    .unwrap();
    assert_eq!(
        out["secret_headers"],
        json!({"Authorization": {"env": "PAGER_TOKEN"}})
    );
    assert_eq!(
        out["hmac"],
        json!({"secret": {"file": "/etc/reflex/hmac"}, "header": "X-Reflex-Signature"})
    );
    assert_eq!(out["body_text"], json!("hi"));
    let diags = diagnostics(
        "actions:\n  - webhook: {url: \"https://x.example/\", secret_headers: {A: {env: \"1BAD\"}}, hmac: {secret: {file: rel/path}}}\n",
    );
    find(&diags, "not an environment variable name");
    find(&diags, "must be an absolute path");
    find(&diags, "`hmac` signs the body");
}

#[test]
fn a_webhook_url_can_be_a_secret_reference_and_is_rendered_as_one() {
    let out = render(
        "actions:\n  - webhook:\n      url: {env: SLACK_URL}\n      idempotent_receiver: true\n      body_text: hi\n",
        json!({}),
    )
    .unwrap();
    assert_eq!(out["url"], json!({"env": "SLACK_URL"}));
    assert_eq!(out["idempotent_receiver"], json!(true));
    let out = render(
        "actions:\n  - webhook: {url: {file: /etc/reflex/slack-url}}\n",
        json!({}),
    )
    .unwrap();
    assert_eq!(out["url"], json!({"file": "/etc/reflex/slack-url"}));
    assert_eq!(out["idempotent_receiver"], json!(false));
    let diags = diagnostics("actions:\n  - webhook: {url: {file: relative/url}}\n");
    let d = find(&diags, "must be an absolute path");
    assert_eq!(d.line, 2);
    let err = parse("actions:\n  - webhook: {url: {vault: x}}\n").unwrap_err();
    assert!(err.contains("env") && err.contains("file"), "{err}");
    let err = parse("actions:\n  - webhook: {url: [a]}\n").unwrap_err();
    assert!(err.contains("a URL (template) or a secret"), "{err}");
}

#[test]
fn webhook_body_rules_retries_and_statuses_are_validated() {
    let diags = diagnostics(
        "actions:\n  - webhook: {method: GET, url: \"https://x.example/\", body: {a: 1}}\n",
    );
    find(&diags, "a GET request has no body");
    let diags = diagnostics(
        "actions:\n  - webhook: {url: \"https://x.example/\", body: {a: 1}, body_text: b}\n",
    );
    find(&diags, "either `body` (JSON) or `body_text`");
    let diags = diagnostics(
        "actions:\n  - webhook: {url: \"https://x.example/\", retries: 50, timeout: 0s, success_status: [2xx, 700, 299-200]}\n",
    );
    find(&diags, "`retries` is at most 10");
    find(&diags, "`timeout` must be more than 0s");
    find(&diags, "`700` is not an HTTP status");
    find(&diags, "the range is empty");
}

#[test]
fn status_ranges_parse_codes_classes_and_ranges() {
    assert_eq!(
        StatusRange::parse("204"),
        Ok(StatusRange { from: 204, to: 204 })
    );
    assert_eq!(
        StatusRange::parse("4xx"),
        Ok(StatusRange { from: 400, to: 499 })
    );
    assert_eq!(
        StatusRange::parse("200-202"),
        Ok(StatusRange { from: 200, to: 202 })
    );
    assert!(StatusRange::parse("6xx").is_err());
    assert!(StatusRange::parse("abc").is_err());
    assert!(StatusRange { from: 200, to: 299 }.contains(204));
    let out = render(
        "actions:\n  - webhook: {url: \"https://x.example/\", success_status: [200, 409], retries: 0, timeout: 30s}\n",
        json!({}),
    )
    .unwrap();
    assert_eq!(
        out["success_status"],
        json!([{"from": 200, "to": 200}, {"from": 409, "to": 409}])
    );
    assert_eq!(
        (out["retries"].clone(), out["timeout_ms"].clone()),
        (json!(0), json!(30_000))
    );
}
