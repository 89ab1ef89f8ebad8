//! Logging of the consumer's errors without flooding the log during an outage.

use std::time::{Duration, Instant};

/// How often one repeated consumer error is logged. During a broker outage librdkafka reports
/// the same transport error many times a second; one line per interval (with the count) says
/// as much without flooding the log.
const ERROR_LOG_EVERY: Duration = Duration::from_secs(30);

/// Logs consumer errors: a new error at once, a repeat of the last one at most every
/// [`ERROR_LOG_EVERY`], with how many were not logged.
#[derive(Debug, Default)]
pub(super) struct ErrorLog {
    last: Option<(String, Instant)>,
    repeats: u64,
}

impl ErrorLog {
    /// Whether `error` should be logged now; counts it otherwise.
    fn admit(&mut self, error: &str, now: Instant) -> bool {
        match &self.last {
            Some((last, at)) if last == error && now.duration_since(*at) < ERROR_LOG_EVERY => {
                self.repeats += 1;
                false
            }
            _ => {
                self.last = Some((error.to_owned(), now));
                true
            }
        }
    }

    pub(super) fn report(&mut self, error: &str) {
        if self.admit(error, Instant::now()) {
            let repeats = std::mem::take(&mut self.repeats);
            tracing::warn!(
                error,
                repeats_not_logged = repeats,
                "Kafka consumer error; librdkafka retries"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_consumer_error_is_logged_once_per_interval_and_a_new_one_at_once() {
        let mut log = ErrorLog::default();
        let start = Instant::now();
        assert!(log.admit("all brokers down", start));
        assert!(!log.admit("all brokers down", start + Duration::from_secs(1)));
        assert!(!log.admit("all brokers down", start + Duration::from_secs(2)));
        assert_eq!(log.repeats, 2);
        assert!(log.admit("broker transport failure", start + Duration::from_secs(3)));
        assert!(log.admit(
            "broker transport failure",
            start + Duration::from_secs(3) + ERROR_LOG_EVERY
        ));
    }
}
