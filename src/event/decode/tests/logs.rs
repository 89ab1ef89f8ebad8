//! Log lines: plain text, syslog (rsyslog's formats), logfmt, and the log shippers' JSON records,
//! all decoded to the one `{message, level, host, timestamp, fields}` shape.

use proptest::prelude::*;

use super::super::arbitrary::{self, near_valid, text_from};
use super::*;

fn line(text: &str, decoding: Decoding) -> Event {
    one(text, &[], decoding)
}

fn log_format(event: &Event) -> &str {
    attr(event, "log_format").as_str().unwrap()
}

#[test]
fn a_plain_line_is_its_message_at_the_record_time() {
    let event = line("GET /healthz 200 0.3ms\n", Decoding::Log);
    assert_eq!(event.meta.format, Format::Log);
    assert_eq!(log_format(&event), "plain");
    assert_eq!(
        event.payload,
        json!({"message": "GET /healthz 200 0.3ms", "level": null, "host": null,
               "timestamp": "2026-11-20T11:00:00Z", "fields": {}})
    );
    assert_eq!(event.meta.timestamp, record_time());
    assert_eq!(event.meta.id, "events/2/42");
}

#[test]
fn a_plain_line_is_never_auto_detected_and_json_is_not_a_log_under_auto() {
    let err = error("Out of memory: Killed process 9876", &[], Decoding::Auto);
    assert!(err.contains("not JSON"), "{err}");
    assert_eq!(auto(FLUENT_BIT).meta.format, Format::Json);
}

#[test]
fn rsyslog_lines_in_every_shipped_format_decode() {
    let lines: Vec<&str> = SYSLOG.lines().collect();
    let rfc5424 = line(lines[0], Decoding::Syslog);
    assert_eq!(log_format(&rfc5424), "syslog");
    assert_eq!(
        rfc5424.payload,
        json!({
            "message": "Failed password for invalid user admin from 203.0.113.9 port 52144 ssh2",
            "level": "critical",
            "host": "web-1.example.org",
            "timestamp": "2026-12-04T23:10:01.003Z",
            "fields": {
                "facility": "auth", "app": "sshd", "procid": "4123", "msgid": "ID47",
                "structured_data": {
                    "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
                    "origin": {"ip": "10.0.0.7"}
                }
            }
        })
    );
    assert_eq!(rfc5424.meta.timestamp, time("2026-12-04T23:10:01.003Z"));

    // RFC 3164: the year comes from the record time (2026-11-20: the line is from 2025-12-04).
    let bsd = line(lines[1], Decoding::Syslog);
    assert_eq!(bsd.payload["level"], "info");
    assert_eq!(bsd.payload["host"], "web-1");
    assert_eq!(
        bsd.payload["fields"],
        json!({"facility": "authpriv", "app": "CRON", "procid": "4242"})
    );
    assert!(
        bsd.payload["message"]
            .as_str()
            .unwrap()
            .starts_with("pam_unix(cron:session)")
    );
    assert_eq!(bsd.meta.timestamp, time("2025-12-04T23:10:01Z"));

    // RSYSLOG_FileFormat (omkafka's default): no PRI, RFC 3339 time, no level.
    let file_format = line(lines[2], Decoding::Syslog);
    assert_eq!(file_format.payload["level"], Value::Null);
    assert_eq!(file_format.payload["fields"], json!({"app": "kernel"}));
    assert!(
        file_format.payload["message"]
            .as_str()
            .unwrap()
            .starts_with("Out of memory: Killed")
    );
    assert_eq!(
        file_format.meta.timestamp,
        time("2026-12-04T23:10:02.123456Z")
    );

    let traditional = line(lines[3], Decoding::Syslog);
    assert_eq!(
        traditional.payload["message"],
        "Started Session 42 of User deploy."
    );
    assert_eq!(
        traditional.payload["fields"],
        json!({"app": "systemd", "procid": "1"})
    );
}

#[test]
fn a_bsd_time_takes_the_year_that_puts_it_at_or_before_the_record() {
    let mut event = decode(
        &RawRecord {
            timestamp: Some(time("2027-01-01T00:00:30Z")),
            ..record(b"<13>Dec 31 23:59:59 h app: bye", &[])
        },
        Decoding::Syslog,
        &DecodeLimits::default(),
    )
    .unwrap();
    assert_eq!(event.remove(0).meta.timestamp, time("2026-12-31T23:59:59Z"));
}

#[test]
fn rfc5424_nil_values_are_absent() {
    let event = line("<165>1 - - - - - -", Decoding::Syslog);
    assert_eq!(
        event.payload,
        json!({"message": "", "level": "notice", "host": null, "timestamp": "2026-11-20T11:00:00Z",
               "fields": {"facility": "local4"}})
    );
}

#[test]
fn broken_syslog_lines_say_what_is_wrong() {
    for (text, says) in [
        ("just words", "neither a `<PRI>` priority nor a syslog time"),
        ("<999>1 - - - - - -", "`<999>` is not a priority"),
        ("<12", "no `<PRI>` priority"),
        ("<34>1 2026-12-04 h a p m -", "is not an RFC 3339 TIMESTAMP"),
        ("<34>1 - h a p m", "no STRUCTURED-DATA"),
        ("<34>1 - h a p m [id k=\"v] msg", "no closing quote"),
        ("<34>1 - h a p m [id k=\"v\"", "no closing `]`"),
        ("<34>1 - h a p m [id k] msg", "without `=\"value\"`"),
        ("<34>1 - h a p m x msg", "neither `-` nor `[...]`"),
    ] {
        let err = error(text, &[], Decoding::Syslog);
        assert!(
            err.contains("decoding is `syslog`") && err.contains(says),
            "{text}: {err}"
        );
    }
}

#[test]
fn logfmt_pairs_fill_the_shape_and_the_rest_goes_to_fields() {
    let lines: Vec<&str> = LOGFMT.lines().collect();
    let event = line(lines[0], Decoding::Logfmt);
    assert_eq!(log_format(&event), "logfmt");
    assert_eq!(
        event.payload,
        json!({
            "message": "payment gateway timeout after 30s",
            "level": "error",
            "host": "checkout-7d9f8c6b5-x2x9q",
            "timestamp": "2026-12-04T23:10:04.500Z",
            "fields": {"pod": "checkout-7d9f8c6b5-x2x9q", "duration_ms": "30012", "retry": true}
        })
    );
    let quoted = line(lines[1], Decoding::Logfmt);
    assert_eq!(quoted.payload["message"], "slow query \"SELECT 1\"");
    assert_eq!(quoted.payload["level"], "warning");
    assert_eq!(quoted.meta.timestamp, time("2026-12-04T23:10:05Z"));
    assert_eq!(
        quoted.payload["fields"],
        json!({"caller": "db.go:88", "rows": "0"})
    );
}

#[test]
fn text_that_is_not_logfmt_is_refused() {
    for (text, says) in [
        ("2026-12-04 INFO started", "no `key=value` pair"),
        ("msg=\"never closed", "no closing quote"),
        ("=value", "is not a logfmt key"),
        ("\"quoted\"=key", "is not a logfmt key"),
    ] {
        let err = error(text, &[], Decoding::Logfmt);
        assert!(
            err.contains("decoding is `logfmt`") && err.contains(says),
            "{text}: {err}"
        );
    }
}

#[test]
fn shipper_records_decode_to_the_same_shape() {
    let fluent = one(FLUENT_BIT, &[], Decoding::LogJson);
    assert_eq!(log_format(&fluent), "fluent_bit");
    assert!(
        fluent.payload["message"]
            .as_str()
            .unwrap()
            .contains("OutOfMemoryError")
    );
    assert_eq!(fluent.meta.timestamp.timestamp(), 1_796_425_801);
    assert_eq!(
        fluent.payload["fields"]["kubernetes"]["pod_name"],
        "checkout-7d9f8c6b5-x2x9q"
    );
    assert_eq!(fluent.payload["fields"]["stream"], "stderr");
    assert_eq!(fluent.payload["host"], Value::Null);

    let vector = one(VECTOR, &[], Decoding::LogJson);
    assert_eq!(log_format(&vector), "vector");
    assert_eq!(vector.meta.timestamp, time("2026-12-04T23:10:04.5Z"));
    assert_eq!(
        vector.payload["fields"]["kubernetes"]["pod_namespace"],
        "shop"
    );
    assert!(vector.payload["fields"].get("message").is_none());

    let filebeat = one(FILEBEAT, &[], Decoding::LogJson);
    assert_eq!(log_format(&filebeat), "filebeat");
    assert_eq!(filebeat.payload["host"], "edge-2");
    assert_eq!(filebeat.payload["level"], "error");
    assert_eq!(filebeat.meta.timestamp, time("2026-12-04T23:10:06.789Z"));
    assert_eq!(
        filebeat.payload["fields"]["log"]["file"]["path"],
        "/var/log/nginx/error.log"
    );

    let plain = one(
        r#"{"msg": "hi", "hostname": "h", "severity": "WARN"}"#,
        &[],
        Decoding::LogJson,
    );
    assert_eq!(log_format(&plain), "json");
    assert_eq!(
        plain.payload,
        json!({"message": "hi", "level": "warning", "host": "h",
        "timestamp": "2026-11-20T11:00:00Z", "fields": {}})
    );
}

#[test]
fn records_that_are_not_shipper_logs_are_refused() {
    let err = error(r#"{"text": "no message"}"#, &[], Decoding::LogJson);
    assert!(err.contains("no `message`, `log` or `msg` string"), "{err}");
    let err = error(ALERTMANAGER, &[], Decoding::LogJson);
    assert!(err.contains("looks like `alertmanager`"), "{err}");
    let err = error(
        r#"{"message": "m", "@timestamp": "yesterday"}"#,
        &[],
        Decoding::LogJson,
    );
    assert!(
        err.contains("`@timestamp` is \"yesterday\", neither an RFC 3339"),
        "{err}"
    );
}

#[test]
fn a_shipper_record_at_the_depth_limit_does_not_give_an_event_past_it() {
    let limits = DecodeLimits::default();
    let mut doc = arbitrary::nested(limits.max_depth - 1, Value::Null);
    doc = json!({"message": "m", "deep": doc});
    let bytes = serde_json::to_vec(&doc).unwrap();
    let result = decode(&record(&bytes, &[]), Decoding::LogJson, &limits);
    assert!(
        matches!(result, Err(DecodeError::TooDeep { max: 64, .. })),
        "{result:?}"
    );
}

#[test]
fn levels_are_normalised() {
    for (given, level) in [
        ("WARN", "warning"),
        ("Err", "error"),
        ("FATAL", "critical"),
        ("Verbose", "verbose"),
    ] {
        let event = line(&format!("level={given} msg=x"), Decoding::Logfmt);
        assert_eq!(event.payload["level"], level, "{given}");
    }
}

#[test]
fn a_line_longer_than_the_bound_is_refused_with_the_limit() {
    let long = "x".repeat(crate::event::decode::logs::MAX_LINE_BYTES + 1);
    for decoding in TEXT_DECODINGS {
        let err = error(&long, &[], decoding);
        assert!(
            err.contains("more than the 262144 bytes a log line may have"),
            "{err}"
        );
    }
    assert_eq!(
        line(
            &"x".repeat(crate::event::decode::logs::MAX_LINE_BYTES),
            Decoding::Log
        )
        .payload["message"]
            .as_str()
            .unwrap()
            .len(),
        crate::event::decode::logs::MAX_LINE_BYTES
    );
}

#[test]
fn text_decodings_refuse_bytes_that_are_not_utf8_and_tombstones() {
    for decoding in TEXT_DECODINGS {
        let err = decode(
            &record(b"\xff\xfe", &[]),
            decoding,
            &DecodeLimits::default(),
        )
        .unwrap_err();
        assert!(matches!(err, DecodeError::NotUtf8 { .. }), "{err}");
        let tombstone = RawRecord {
            payload: None,
            ..record(b"", &[])
        };
        let err = decode(&tombstone, decoding, &DecodeLimits::default()).unwrap_err();
        assert!(matches!(err, DecodeError::Tombstone { .. }), "{err}");
    }
}

#[test]
fn reflex_test_steps_give_a_line_as_a_string() {
    let headers = BTreeMap::new();
    let events = decode_json(
        json!("level=error msg=boom"),
        TOPIC,
        0,
        1,
        None,
        &headers,
        None,
        Decoding::Logfmt,
    )
    .unwrap();
    assert_eq!(events[0].payload["message"], "boom");
    let err = decode_json(
        json!({"a": 1}),
        TOPIC,
        0,
        1,
        None,
        &headers,
        None,
        Decoding::Log,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("the value is an object, not a line of text"),
        "{err}"
    );
}

/// Pieces of syslog and logfmt grammar, so random lines reach the deep parser paths.
const LOG_PIECES: &[&str] = &[
    "<34>",
    "<13>1 ",
    "<999>",
    "<",
    ">",
    "1 ",
    "- ",
    "-",
    "[",
    "]",
    "[id k=\"v\"]",
    "\"",
    "\\",
    "\\\"",
    "=",
    "=\"",
    " ",
    "  ",
    "Dec  4 23:10:01 ",
    "Feb 29 00:00:00 ",
    "2026-12-04T23:10:01Z ",
    "host ",
    "app[12]: ",
    "app: ",
    ":",
    "msg=",
    "level=error ",
    "ts=2026-12-04T23:10:01Z ",
    "\n",
    "\u{feff}",
    "é",
];

fn syslog_line() -> BoxedStrategy<String> {
    (0u8..192, "[a-z]{1,8}", "[a-z]{1,8}", "[ -~]{0,30}")
        .prop_map(|(pri, host, app, msg)| {
            format!("<{pri}>1 2026-12-04T23:10:01Z {host} {app} 1 - [x@1 a=\"b\"] {msg}")
        })
        .boxed()
}

proptest! {
    #![proptest_config(arbitrary::config())]

    #[test]
    fn any_text_under_any_text_decoding_is_an_event_or_an_error(
        text in near_valid(syslog_line(), LOG_PIECES),
        decoding in proptest::sample::select(TEXT_DECODINGS.to_vec()),
    ) {
        if let Ok(events) = decode_with(&text, &[], decoding) {
            prop_assert_eq!(events.len(), 1);
            prop_assert_eq!(events[0].meta.format, Format::Log);
            prop_assert!(events[0].payload["message"].is_string());
        }
        if decoding == Decoding::Log {
            prop_assert!(decode_with(&text, &[], decoding).is_ok());
        }
    }

    #[test]
    fn generated_rfc5424_lines_always_decode(text in syslog_line()) {
        let event = one(&text, &[], Decoding::Syslog);
        prop_assert_eq!(&event.payload["fields"]["structured_data"]["x@1"]["a"], "b");
    }

    #[test]
    fn any_text_never_panics_the_logfmt_parser(text in text_from(LOG_PIECES)) {
        let _ = decode_with(&text, &[], Decoding::Logfmt);
    }
}
