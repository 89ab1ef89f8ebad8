//! Bad input: tombstones, empty, not UTF-8, not JSON, too deep, too large, truncated.

use super::*;

#[test]
fn a_tombstone_is_an_error_naming_the_record() {
    let mut raw = record(b"", &[]);
    raw.payload = None;
    let text = decode(&raw, Decoding::Auto, &DecodeLimits::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        text,
        "record topic `events` partition 2 offset 42: the record has no value (a tombstone), so \
         there is no event to decode; point Reflex at a topic of events, not a compacted state topic"
    );
}

#[test]
fn an_empty_or_blank_value_is_an_error() {
    for payload in ["", "  \n\t"] {
        let text = error(payload, &[], Decoding::Auto);
        assert!(
            text.ends_with("the record value is empty; the producer must send a JSON document"),
            "{text}"
        );
    }
}

#[test]
fn a_value_that_is_not_utf8_names_the_bad_byte() {
    let raw = record(b"{\"a\xff\": 1}", &[]);
    let err = decode(&raw, Decoding::Auto, &DecodeLimits::default()).unwrap_err();
    assert!(
        matches!(err, DecodeError::NotUtf8 { valid_up_to: 3, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("not UTF-8 text (invalid byte at position 3)"),
        "{err}"
    );
}

#[test]
fn a_value_that_is_not_json_reports_the_parser_position() {
    let text = error("{\"a\": tru}", &[], Decoding::Auto);
    assert!(
        text.contains("the record value is not JSON: expected ident at line 1 column"),
        "{text}"
    );
    let trailing = error("{\"a\": 1} {\"b\": 2}", &[], Decoding::Auto);
    assert!(trailing.contains("trailing characters"), "{trailing}");
}

#[test]
fn a_leading_byte_order_mark_is_ignored() {
    let event = auto("\u{feff}{\"type\": \"bom\"}");
    assert_eq!(event.meta.event_type.as_deref(), Some("bom"));
}

fn nested(levels: usize) -> String {
    format!("{}{}", "[".repeat(levels), "]".repeat(levels))
}

#[test]
fn nesting_up_to_the_bound_is_accepted_and_one_more_level_is_refused() {
    let limits = DecodeLimits::default();
    let ok = nested(limits.max_depth);
    assert!(decode(&record(ok.as_bytes(), &[]), Decoding::Auto, &limits).is_ok());
    let deep = nested(limits.max_depth + 1);
    let text = decode(&record(deep.as_bytes(), &[]), Decoding::Auto, &limits)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("nests arrays and objects deeper than 64 levels"),
        "{text}"
    );
    assert!(text.contains("raise `pipeline.max_depth`"), "{text}");
}

#[test]
fn brackets_inside_strings_do_not_count_as_nesting() {
    let tricky = format!(
        r#"{{"a": "{} \" {}", "b": [1]}}"#,
        "[".repeat(100),
        "{".repeat(100)
    );
    assert_eq!(auto(&tricky).payload["b"], json!([1]));
}

#[test]
fn the_depth_bound_applies_to_decoded_base64_data_and_to_decode_json() {
    let deep = nested(DecodeLimits::DEFAULT_MAX_DEPTH + 1);
    let encoded = base64::encode(deep.as_bytes());
    let text = error(
        &ce_with(json!({"data_base64": encoded})),
        &[],
        Decoding::Auto,
    );
    assert!(text.contains("deeper than 64 levels"), "{text}");
    let value: Value = serde_json::from_str(&deep).unwrap();
    let err = decode_json(
        value,
        "t",
        0,
        1,
        None,
        &BTreeMap::new(),
        None,
        Decoding::Auto,
    )
    .unwrap_err();
    assert!(
        matches!(err, DecodeError::TooDeep { max: 64, .. }),
        "{err:?}"
    );
}

#[test]
fn decode_json_refuses_a_document_over_the_size_bound_like_a_kafka_record() {
    let text =
        json!({ "padding": "x".repeat(DecodeLimits::DEFAULT_MAX_PAYLOAD_BYTES) }).to_string();
    let record_err = decode(
        &record(text.as_bytes(), &[]),
        Decoding::Auto,
        &DecodeLimits::default(),
    )
    .unwrap_err();
    let value: Value = serde_json::from_str(&text).unwrap();
    let json_err = decode_json(
        value,
        "events",
        2,
        42,
        None,
        &BTreeMap::new(),
        None,
        Decoding::Auto,
    )
    .unwrap_err();
    assert_eq!(json_err, record_err);
    assert!(
        matches!(json_err, DecodeError::TooLarge { size, max: 1_048_576, .. } if size == text.len()),
        "{json_err:?}"
    );
}

#[test]
fn a_value_over_the_size_bound_is_refused_before_parsing() {
    let limits = DecodeLimits {
        max_payload_bytes: 16,
        ..DecodeLimits::default()
    };
    let fits = br#"{"a": "1234567"}"#;
    assert_eq!(fits.len(), 16);
    assert!(decode(&record(fits, &[]), Decoding::Auto, &limits).is_ok());
    let text = decode(
        &record(b"{\"a\": \"12345678\"}", &[]),
        Decoding::Auto,
        &limits,
    )
    .unwrap_err()
    .to_string();
    assert!(
        text.contains("the record value is 17 bytes, more than the limit of 16 bytes"),
        "{text}"
    );
    // Binary-mode data is bounded too.
    let big = vec![b'x'; 17];
    let err = decode(&record(&big, &CE_HEADERS), Decoding::Auto, &limits).unwrap_err();
    assert!(
        matches!(err, DecodeError::TooLarge { size: 17, .. }),
        "{err:?}"
    );
}

#[test]
fn default_limits_are_one_mebibyte_and_64_levels() {
    let limits = DecodeLimits::default();
    assert_eq!(limits.max_payload_bytes, 1_048_576);
    assert_eq!(limits.max_depth, 64);
}

#[test]
fn every_truncation_of_every_sample_is_an_error_under_every_decoding() {
    for sample in [ALERTMANAGER, CE_STRUCTURED, K8S_CORE, FALCO, PLAIN] {
        let bytes = sample.trim_end().as_bytes();
        for end in 0..bytes.len() {
            for decoding in DECODINGS {
                let result = decode(
                    &record(&bytes[..end], &[]),
                    decoding,
                    &DecodeLimits::default(),
                );
                assert!(
                    result.is_err(),
                    "prefix {end} of a sample decoded under {decoding}"
                );
            }
        }
    }
}
