//! The fixed-rate send schedule: message `n` is due at `start + n / rate`, whatever
//! happened to the messages before it. Latency is measured from this intended time,
//! so a stall delays every message scheduled behind it and shows in the tail
//! (coordinated omission corrected, as OpenMessaging Benchmark's publish delay does).
//! `--rate max` has no schedule: each message's intended time is when it is sent.

use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A `--rate` value: `max`, `<n>msg/s`, or MB/s (`<n>MB/s` or a bare number).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    /// As fast as the sender can go; no schedule.
    Max,
    /// Messages per second.
    MsgsPerS(f64),
    /// Megabytes (10^6 bytes) per second.
    MbPerS(f64),
}

impl FromStr for Rate {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let s = s.trim();
        if s == "max" {
            return Ok(Rate::Max);
        }
        let (number, make): (&str, fn(f64) -> Rate) = if let Some(n) = s.strip_suffix("msg/s") {
            (n, Rate::MsgsPerS)
        } else if let Some(n) = s.strip_suffix("MB/s") {
            (n, Rate::MbPerS)
        } else {
            (s, Rate::MbPerS)
        };
        let value: f64 = number
            .trim()
            .parse()
            .with_context(|| format!("--rate {s}: expected `max`, `<n>msg/s` or MB/s"))?;
        if !value.is_finite() || value <= 0.0 {
            bail!("--rate {s}: the rate must be a positive number");
        }
        Ok(make(value))
    }
}

impl Rate {
    /// Messages per second for messages of `message_bytes`; `None` for `max`.
    pub fn msgs_per_s(self, message_bytes: usize) -> Option<f64> {
        match self {
            Rate::Max => None,
            Rate::MsgsPerS(r) => Some(r),
            Rate::MbPerS(mbps) => Some(mbps * 1e6 / message_bytes.max(1) as f64),
        }
    }

    /// The schedule starting at `start`; `None` for `max`.
    pub fn schedule(self, message_bytes: usize, start: Instant) -> Option<Schedule> {
        self.msgs_per_s(message_bytes)
            .map(|r| Schedule::new(r, start))
    }
}

/// Intended send times of a fixed-rate run.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    start: Instant,
    msgs_per_s: f64,
}

impl Schedule {
    /// `msgs_per_s` messages per second from `start`; the rate must be positive.
    pub fn new(msgs_per_s: f64, start: Instant) -> Self {
        assert!(
            msgs_per_s.is_finite() && msgs_per_s > 0.0,
            "schedule rate must be positive, got {msgs_per_s}"
        );
        Schedule { start, msgs_per_s }
    }

    /// When message `n` (0-based) is due, as an offset from the start. Computed from
    /// `n` directly, so no rounding accumulates over a long run.
    pub fn offset(&self, n: u64) -> Duration {
        Duration::from_secs_f64(n as f64 / self.msgs_per_s)
    }

    /// When message `n` (0-based) is due.
    pub fn intended(&self, n: u64) -> Instant {
        self.start + self.offset(n)
    }

    /// How long to wait at `now` before message `n` is due; `None` when it is due.
    pub fn wait_before(&self, n: u64, now: Instant) -> Option<Duration> {
        let due = self.intended(n);
        (due > now).then(|| due - now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rates() {
        assert_eq!("max".parse::<Rate>().unwrap(), Rate::Max);
        assert_eq!("100".parse::<Rate>().unwrap(), Rate::MbPerS(100.0));
        assert_eq!("2.5MB/s".parse::<Rate>().unwrap(), Rate::MbPerS(2.5));
        assert_eq!("1000msg/s".parse::<Rate>().unwrap(), Rate::MsgsPerS(1000.0));
        assert!("0".parse::<Rate>().is_err());
        assert!("fast".parse::<Rate>().is_err());
    }

    #[test]
    fn mb_per_s_becomes_messages_per_second() {
        assert_eq!(Rate::MbPerS(1.0).msgs_per_s(1000), Some(1000.0));
        assert_eq!(Rate::Max.msgs_per_s(1000), None);
    }

    #[test]
    fn intended_times_are_evenly_spaced() {
        let start = Instant::now();
        let s = Schedule::new(1000.0, start);
        assert_eq!(s.offset(0), Duration::ZERO);
        assert_eq!(s.offset(1500), Duration::from_millis(1500));
        assert_eq!(s.intended(3), start + Duration::from_millis(3));
        assert_eq!(s.wait_before(2, start), Some(Duration::from_millis(2)));
        assert_eq!(s.wait_before(2, start + Duration::from_millis(5)), None);
    }
}
