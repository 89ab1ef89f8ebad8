//! Durations in rule files: `500ms`, `45s`, `10m`, `1h30m`, `2d`.
//!
//! A duration is one or more `<digits><unit>` parts with units from largest to smallest, each at
//! most once (`1h30m`, not `30m1h` or `1h1h`), so a value reads one way only. No spaces, no
//! fractions, no sign: `1.5h` is written `1h30m`. Zero (`0s`) parses; whether zero makes sense is
//! up to the caller (windows reject it).

use chrono::Duration;

use super::diagnostic::Diagnostics;
use super::model::SpannedString;

/// The units, largest first, with their length in milliseconds.
const UNITS: [(&str, i64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Longest accepted duration. Windows longer than a year are a mistake (the state they keep
/// would outlive any incident), and the cap keeps `now + window` far inside chrono's range so
/// callers may add durations to timestamps without overflow checks.
pub const MAX: Duration = Duration::days(365);

/// Longest accepted input. Real durations are a handful of characters; the bound keeps error
/// messages (which quote the input) short.
const MAX_LEN: usize = 64;

/// Why a duration did not parse, and where (character offset into the input).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ParseError {
    offset: usize,
    message: String,
}

impl ParseError {
    fn at(offset: usize, message: impl Into<String>) -> Self {
        Self {
            offset,
            message: message.into(),
        }
    }
}

fn valid_units() -> String {
    "valid units: ms, s, m, h, d (e.g. `500ms`, `45s`, `10m`, `1h30m`, `2d`)".to_owned()
}

/// Parses a rule-file duration such as `500ms`, `45s`, `10m`, `1h30m` or `2d`.
///
/// The error message says what is wrong and lists the valid units.
pub fn parse(s: &str) -> Result<Duration, String> {
    parse_located(s).map_err(|e| e.message)
}

fn parse_located(s: &str) -> Result<Duration, ParseError> {
    if s.trim().is_empty() {
        return Err(ParseError::at(
            0,
            format!("empty duration; {}", valid_units()),
        ));
    }
    if s.len() > MAX_LEN {
        return Err(ParseError::at(
            0,
            format!("duration is longer than {MAX_LEN} characters"),
        ));
    }
    if s.starts_with('-') {
        return Err(ParseError::at(0, "a duration cannot be negative"));
    }
    let chars: Vec<char> = s.chars().collect();
    let mut total_ms: i64 = 0;
    let mut i = 0;
    // Index into UNITS of the last unit used: the next one must be strictly smaller.
    let mut last_unit: Option<usize> = None;
    while i < chars.len() {
        let digits_start = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        if i == digits_start {
            return Err(ParseError::at(
                i,
                format!(
                    "expected a number at `{}`; {}",
                    chars[i..].iter().collect::<String>(),
                    valid_units()
                ),
            ));
        }
        let number: String = chars[digits_start..i].iter().collect();
        let unit_start = i;
        while i < chars.len() && chars[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit: String = chars[unit_start..i].iter().collect();
        if unit.is_empty() {
            let message = if i < chars.len() {
                format!(
                    "unexpected `{}` after `{number}`; {}",
                    chars[i],
                    valid_units()
                )
            } else {
                format!("`{number}` has no unit; {}", valid_units())
            };
            return Err(ParseError::at(i.min(chars.len()), message));
        }
        let Some(unit_index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(ParseError::at(
                unit_start,
                format!("unknown unit `{unit}`; {}", valid_units()),
            ));
        };
        if let Some(last) = last_unit
            && unit_index <= last
        {
            return Err(ParseError::at(
                unit_start,
                format!(
                    "unit `{unit}` comes after `{}`; write units from largest to smallest, \
                     each once (e.g. `1h30m`)",
                    UNITS[last].0
                ),
            ));
        }
        last_unit = Some(unit_index);
        let overflow = || ParseError::at(digits_start, format!("duration `{s}` is too large"));
        let value: i64 = number.parse().map_err(|_| overflow())?;
        let part = value
            .checked_mul(UNITS[unit_index].1)
            .ok_or_else(overflow)?;
        total_ms = total_ms.checked_add(part).ok_or_else(overflow)?;
    }
    match Duration::try_milliseconds(total_ms) {
        Some(d) if d <= MAX => Ok(d),
        _ => Err(ParseError::at(
            0,
            format!("duration `{s}` is too large (at most {})", format(MAX)),
        )),
    }
}

/// Compiles a located duration, pushing a diagnostic that points at the offending character.
pub fn compile(src: &SpannedString, diags: &mut Diagnostics) -> Option<Duration> {
    match parse_located(&src.value) {
        Ok(d) => Some(d),
        Err(e) => {
            diags.error_in(
                src.referenced,
                content_shift(src) + e.offset,
                format!("invalid duration `{}`: {}", src.value, e.message),
                Some("write a duration like `500ms`, `45s`, `10m`, `1h30m` or `2d`".to_owned()),
            );
            None
        }
    }
}

/// Characters between a scalar's location and its first content character: serde-saphyr
/// locates a quoted scalar at its opening quote, and its span then covers both quotes.
fn content_shift(src: &SpannedString) -> usize {
    let span = src.referenced.span().len();
    let value = src.value.chars().count() as u64;
    usize::from(span >= value + 2)
}

/// Formats a duration the way rule files write it (`1h30m`, `500ms`, `0s`), for messages.
///
/// Sub-millisecond precision is dropped; negative durations get a leading `-`.
pub fn format(d: Duration) -> String {
    let ms = d.num_milliseconds();
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    if ms < 0 {
        out.push('-');
    }
    // unsigned_abs: i64::MIN has no positive i64 counterpart.
    let mut rest = ms.unsigned_abs();
    for (name, len) in UNITS {
        let len = len.unsigned_abs();
        let n = rest / len;
        if n > 0 {
            out.push_str(&n.to_string());
            out.push_str(name);
            rest %= len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::decode::arbitrary::{config, text_from};

    /// Properties over arbitrary input (`cargo test --lib props`).
    mod props {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn no_text_panics_the_parser(text in text_from(&["d", "h", "m", "s", "ms", "1", "30", "365", "0"])) {
                if let Ok(d) = parse(&text) {
                    prop_assert!(d >= Duration::zero() && d <= MAX);
                    // What parses formats to the canonical spelling of the same length.
                    prop_assert_eq!(parse(&format(d)), Ok(d));
                }
            }

            #[test]
            fn every_duration_up_to_the_maximum_round_trips(ms in 0..=MAX.num_milliseconds()) {
                let d = Duration::milliseconds(ms);
                prop_assert_eq!(parse(&format(d)), Ok(d));
            }

            #[test]
            fn format_never_panics(ms in any::<i64>()) {
                if let Some(d) = Duration::try_milliseconds(ms) {
                    let _ = format(d);
                }
            }
        }
    }

    #[test]
    fn single_units_parse_to_their_length() {
        assert_eq!(parse("500ms"), Ok(Duration::milliseconds(500)));
        assert_eq!(parse("45s"), Ok(Duration::seconds(45)));
        assert_eq!(parse("10m"), Ok(Duration::minutes(10)));
        assert_eq!(parse("3h"), Ok(Duration::hours(3)));
        assert_eq!(parse("2d"), Ok(Duration::days(2)));
    }

    #[test]
    fn compound_durations_add_their_parts() {
        assert_eq!(parse("1h30m"), Ok(Duration::minutes(90)));
        assert_eq!(
            parse("1d2h3m4s5ms"),
            Ok(Duration::days(1)
                + Duration::hours(2)
                + Duration::minutes(3)
                + Duration::seconds(4)
                + Duration::milliseconds(5))
        );
    }

    #[test]
    fn zero_parses_and_callers_decide_whether_it_is_meaningful() {
        assert_eq!(parse("0s"), Ok(Duration::zero()));
    }

    #[test]
    fn empty_input_is_rejected() {
        assert!(parse("").unwrap_err().contains("empty"));
        assert!(parse("   ").unwrap_err().contains("empty"));
    }

    #[test]
    fn negative_durations_are_rejected() {
        assert!(parse("-5m").unwrap_err().contains("negative"));
    }

    #[test]
    fn unknown_units_list_the_valid_ones() {
        let err = parse("10x").unwrap_err();
        assert!(err.contains("unknown unit `x`"), "{err}");
        assert!(err.contains("ms, s, m, h, d"), "{err}");
        assert!(parse("10min").unwrap_err().contains("unknown unit `min`"));
    }

    #[test]
    fn a_number_without_unit_is_rejected() {
        let err = parse("10").unwrap_err();
        assert!(err.contains("no unit"), "{err}");
        assert!(parse("1h30").unwrap_err().contains("`30` has no unit"));
    }

    #[test]
    fn fractions_spaces_and_stray_characters_are_rejected() {
        assert!(parse("1.5h").is_err());
        assert!(parse("1h 30m").is_err());
        assert!(parse("h").unwrap_err().contains("expected a number"));
    }

    #[test]
    fn units_must_go_from_largest_to_smallest_once_each() {
        assert!(parse("30m1h").unwrap_err().contains("largest to smallest"));
        assert!(parse("1h1h").unwrap_err().contains("largest to smallest"));
        assert!(parse("1s500ms").is_ok());
    }

    #[test]
    fn overflowing_durations_are_rejected() {
        assert!(
            parse("99999999999999999999d")
                .unwrap_err()
                .contains("too large")
        );
        assert!(
            parse("9223372036854775807d")
                .unwrap_err()
                .contains("too large")
        );
        assert!(parse("366d").unwrap_err().contains("at most 365d"));
        assert_eq!(parse("365d"), Ok(MAX));
    }

    #[test]
    fn format_writes_the_rule_file_notation() {
        assert_eq!(format(Duration::minutes(90)), "1h30m");
        assert_eq!(format(Duration::milliseconds(500)), "500ms");
        assert_eq!(format(Duration::days(2)), "2d");
        assert_eq!(format(Duration::zero()), "0s");
        assert_eq!(format(Duration::seconds(-45)), "-45s");
    }

    #[test]
    fn format_and_parse_round_trip() {
        for s in ["500ms", "45s", "10m", "1h30m", "2d", "1d2h3m4s5ms"] {
            let d = parse(s).unwrap();
            assert_eq!(format(d), s);
            assert_eq!(parse(&format(d)), Ok(d));
        }
    }

    #[test]
    fn compile_points_the_diagnostic_at_the_bad_unit() {
        let spanned: SpannedString =
            serde_saphyr::from_str("10x").expect("a YAML scalar deserializes");
        let mut diags = Diagnostics::new();
        assert_eq!(compile(&spanned, &mut diags), None);
        let items = diags.into_vec();
        assert_eq!(items.len(), 1);
        assert!(items[0].message.contains("unknown unit `x`"));
        assert_eq!(items[0].line, 1);
        // The scalar starts at column 1; the unit is two characters in.
        assert_eq!(items[0].column, 3);
    }

    #[test]
    fn compile_points_inside_a_quoted_scalar_past_the_quote() {
        let spanned: SpannedString = serde_saphyr::from_str("'1h30x'").expect("scalar");
        let mut diags = Diagnostics::new();
        assert_eq!(compile(&spanned, &mut diags), None);
        // Quote at column 1, content from column 2, `x` four characters into the content.
        assert_eq!(diags.into_vec()[0].column, 6);
    }

    #[test]
    fn compile_accepts_a_valid_duration_without_diagnostics() {
        let spanned: SpannedString = serde_saphyr::from_str("1h30m").expect("scalar");
        let mut diags = Diagnostics::new();
        assert_eq!(compile(&spanned, &mut diags), Some(Duration::minutes(90)));
        assert!(diags.is_empty());
    }
}
