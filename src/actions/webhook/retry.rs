//! Retry timing: exponential backoff with full jitter, and `Retry-After`.

use std::time::{Duration, SystemTime};

use backon::ExponentialBuilder;

/// Default ceiling of the first retry's delay.
const DEFAULT_FIRST_DELAY: Duration = Duration::from_millis(500);

/// Default cap of any one backoff delay: with at most 10 retries (the rule limit) the whole
/// sequence stays within a few minutes, which is as long as an event should wait on a receiver.
const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(30);

/// Default cap on a server's `Retry-After`: a receiver asking for an hour must not hold a
/// partition's events (and Kafka offsets) for an hour; after the cap we try again and, if the
/// receiver still refuses, the retries run out and the outcome says so.
const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How long to wait between webhook attempts.
///
/// Delay `n` (0-based) is drawn uniformly from `[0, min(max_delay, first_delay × 2ⁿ)]` ("full
/// jitter", so many Reflex replicas retrying one receiver spread out instead of retrying in
/// lock-step). A `429` or `503` with `Retry-After` waits what the server asked, capped at
/// `max_retry_after`, instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Ceiling of the first delay; each later ceiling doubles.
    pub first_delay: Duration,
    /// Largest ceiling of any one delay.
    pub max_delay: Duration,
    /// Largest `Retry-After` honoured.
    pub max_retry_after: Duration,
    /// Full jitter on (the default). Off, each delay is its ceiling: only for tests that need
    /// exact timings.
    pub jitter: bool,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            first_delay: DEFAULT_FIRST_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
            jitter: true,
        }
    }
}

impl BackoffPolicy {
    /// The ceilings of the delays before each of `retries` retries (backon's exponential
    /// schedule without its jitter, which only ever adds to a delay).
    pub(crate) fn schedule(&self, retries: u32) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.first_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_max_times(retries as usize)
    }

    /// The delay actually slept for a ceiling from [`BackoffPolicy::schedule`], or for a
    /// server's `Retry-After`.
    pub(crate) fn delay(&self, ceiling: Duration, retry_after: Option<Duration>) -> Duration {
        if let Some(asked) = retry_after {
            return asked.min(self.max_retry_after);
        }
        if self.jitter {
            full_jitter(ceiling, fastrand::u64(..=u64::MAX))
        } else {
            ceiling
        }
    }
}

/// A uniformly chosen point of `[0, ceiling]`, from a random `u64`.
fn full_jitter(ceiling: Duration, random: u64) -> Duration {
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    // Scaling by a fraction of u64::MAX (rather than `%`) keeps the draw uniform.
    let fraction = random as f64 / u64::MAX as f64;
    Duration::from_nanos((nanos as f64 * fraction) as u64)
}

/// Parses `Retry-After`: delay-seconds (`120`) or an HTTP-date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`), relative to `now`. A date in the past means "now".
/// `None` for anything else, so a malformed header falls back to the backoff.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at = SystemTime::from(date.with_timezone(&chrono::Utc));
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_from_the_first_delay_up_to_the_cap_and_stop_after_the_retries() {
        let policy = BackoffPolicy {
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
            ..BackoffPolicy::default()
        };
        let ceilings: Vec<u128> = backon::BackoffBuilder::build(policy.schedule(5))
            .map(|d| d.as_millis())
            .collect();
        // backon multiplies in f32; allow a millisecond of rounding.
        let expected = [100, 200, 400, 500, 500];
        assert_eq!(ceilings.len(), expected.len());
        for (got, want) in ceilings.iter().zip(expected) {
            assert!(got.abs_diff(want) <= 1, "{ceilings:?}");
        }
    }

    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        let ceiling = Duration::from_secs(2);
        assert_eq!(full_jitter(ceiling, 0), Duration::ZERO);
        assert_eq!(full_jitter(ceiling, u64::MAX), ceiling);
        let middle = full_jitter(ceiling, u64::MAX / 2);
        assert!(middle.abs_diff(Duration::from_secs(1)) < Duration::from_millis(1));

        let policy = BackoffPolicy::default();
        let draws: Vec<Duration> = (0..200).map(|_| policy.delay(ceiling, None)).collect();
        assert!(draws.iter().all(|d| *d <= ceiling));
        // 200 uniform draws all landing in one half has probability 2^-199.
        assert!(draws.iter().any(|d| *d < ceiling / 2));
        assert!(draws.iter().any(|d| *d > ceiling / 2));
    }

    #[test]
    fn retry_after_replaces_the_backoff_and_is_capped() {
        let policy = BackoffPolicy {
            max_retry_after: Duration::from_secs(60),
            ..BackoffPolicy::default()
        };
        let ceiling = Duration::from_millis(100);
        assert_eq!(
            policy.delay(ceiling, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(
            policy.delay(ceiling, Some(Duration::from_secs(3600))),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates_and_ignores_garbage() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_470); // 07:27:50 GMT
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
