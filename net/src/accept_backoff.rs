//! What an accept loop does after a failed accept: wait (doubling the wait up to a
//! cap) and log once per interval with a count of the failures since, instead of
//! one line per retry. Out of descriptors (EMFILE/ENFILE) an accept fails until a
//! descriptor frees up; retrying at once would spin and flood the log, while the
//! connection stays queued in the listen backlog and is taken once one is free.

use std::time::{Duration, Instant};

/// First wait after a failed accept.
pub const ACCEPT_BACKOFF_MS_MIN: u64 = 10;
/// Longest wait between two accept attempts.
pub const ACCEPT_BACKOFF_MS_MAX: u64 = 1_000;
/// At most one accept-failure log line per this interval.
pub const ACCEPT_ERROR_LOG_INTERVAL_MS: u64 = 10_000;

/// Back-off state of one accept loop.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    /// Next wait; 0 = the last accept succeeded.
    wait_ms: u64,
    last_logged: Option<Instant>,
    /// Failures since the last log line.
    unlogged: u64,
}

/// What to do after a failure.
#[derive(Debug, PartialEq, Eq)]
pub struct AfterFailure {
    pub wait: Duration,
    /// `Some(n)`: log now, covering `n` failures (this one included).
    pub log_failures: Option<u64>,
}

impl AcceptBackoff {
    /// An accept succeeded: the next failure waits the minimum again.
    pub fn succeeded(&mut self) {
        self.wait_ms = 0;
    }

    /// An accept failed at `now`.
    pub fn failed(&mut self, now: Instant) -> AfterFailure {
        self.wait_ms = if self.wait_ms == 0 {
            ACCEPT_BACKOFF_MS_MIN
        } else {
            (self.wait_ms * 2).min(ACCEPT_BACKOFF_MS_MAX)
        };
        self.unlogged += 1;
        let due = self.last_logged.is_none_or(|at| {
            now.saturating_duration_since(at) >= Duration::from_millis(ACCEPT_ERROR_LOG_INTERVAL_MS)
        });
        let log_failures = due.then(|| {
            self.last_logged = Some(now);
            std::mem::take(&mut self.unlogged)
        });
        AfterFailure {
            wait: Duration::from_millis(self.wait_ms),
            log_failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_reset_after_a_success() {
        let mut b = AcceptBackoff::default();
        let now = Instant::now();
        let waits: Vec<u64> = (0..10)
            .map(|_| b.failed(now).wait.as_millis() as u64)
            .collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        b.succeeded();
        assert_eq!(
            b.failed(now).wait,
            Duration::from_millis(ACCEPT_BACKOFF_MS_MIN)
        );
    }

    #[test]
    fn logs_once_per_interval_with_the_count_of_failures() {
        let mut b = AcceptBackoff::default();
        let t0 = Instant::now();
        assert_eq!(b.failed(t0).log_failures, Some(1));
        for i in 1..100u64 {
            let at = t0 + Duration::from_millis(i * 50);
            assert_eq!(b.failed(at).log_failures, None, "failure {i}");
        }
        let later = t0 + Duration::from_millis(ACCEPT_ERROR_LOG_INTERVAL_MS);
        assert_eq!(b.failed(later).log_failures, Some(100));
    }
}
