//! A meter of one stream of completions (acknowledgements of the producers, records
//! received by one consumer group): counts and bytes of everything, and latency and
//! throughput of the records inside the measured window — those whose *intended*
//! send time is at or after the end of the warm-up. An interval histogram is taken
//! once a second for the progress line and the throughput-over-time plot.
//!
//! Shared by the threads that complete records (an acknowledgement thread, a
//! delivery callback, consumer threads) and the progress thread; each call holds the
//! lock for a few hundred nanoseconds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use hdrhistogram::Histogram;

use crate::report::{latency_histogram, record_us};

/// What one interval (since the previous [`Meter::take_interval`]) completed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Interval {
    pub count: u64,
    pub bytes: u64,
    /// p99 latency of the interval's records, µs; `None` when there were none.
    pub p99_us: Option<u64>,
}

/// Everything a meter saw, at the end of a run.
#[derive(Clone, Debug)]
pub struct MeterTotals {
    /// Completions, warm-up included.
    pub count: u64,
    pub bytes: u64,
    /// Completions of records inside the measured window.
    pub counted: u64,
    pub counted_bytes: u64,
    /// When the first and the last counted record completed (µs since the epoch).
    pub first_done_us: Option<u64>,
    pub last_done_us: Option<u64>,
    /// Failed completions (sends the broker or client rejected).
    pub errors: u64,
    /// The first failure, for the report.
    pub first_error: Option<String>,
    /// Latency (intended send time → completion) of the counted records.
    pub latency: Histogram<u64>,
}

impl MeterTotals {
    /// Seconds from `window_start_us` to the last counted completion (0 if none).
    pub fn secs_since(&self, window_start_us: u64) -> f64 {
        self.last_done_us
            .map_or(0.0, |l| l.saturating_sub(window_start_us) as f64 / 1e6)
    }

    /// Seconds from the first to the last counted completion (0 if fewer than two).
    pub fn span_secs(&self) -> f64 {
        match (self.first_done_us, self.last_done_us) {
            (Some(f), Some(l)) => l.saturating_sub(f) as f64 / 1e6,
            _ => 0.0,
        }
    }
}

#[derive(Debug)]
struct State {
    totals: MeterTotals,
    interval: Histogram<u64>,
    interval_count: u64,
    interval_bytes: u64,
}

/// Counts and latencies of one stream of completions.
#[derive(Debug)]
pub struct Meter {
    /// Records intended at or after this (µs since the epoch) are counted.
    window_start_us: AtomicU64,
    state: Mutex<State>,
}

impl Default for Meter {
    fn default() -> Self {
        Meter::new()
    }
}

impl Meter {
    /// A meter that counts nothing until [`start_window`](Self::start_window).
    pub fn new() -> Self {
        Meter {
            window_start_us: AtomicU64::new(u64::MAX),
            state: Mutex::new(State {
                totals: MeterTotals {
                    count: 0,
                    bytes: 0,
                    counted: 0,
                    counted_bytes: 0,
                    first_done_us: None,
                    last_done_us: None,
                    errors: 0,
                    first_error: None,
                    latency: latency_histogram(),
                },
                interval: latency_histogram(),
                interval_count: 0,
                interval_bytes: 0,
            }),
        }
    }

    /// Counts records intended at or after `start_us` from now on.
    pub fn start_window(&self, start_us: u64) {
        self.window_start_us.store(start_us, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One record of `bytes`, intended at `intended_us`, completed at `done_us`.
    pub fn record(&self, intended_us: u64, done_us: u64, bytes: usize) {
        let counted = intended_us >= self.window_start_us.load(Ordering::Relaxed);
        let latency_us = done_us.saturating_sub(intended_us);
        let mut s = self.lock();
        s.totals.count += 1;
        s.totals.bytes += bytes as u64;
        s.interval_count += 1;
        s.interval_bytes += bytes as u64;
        record_us(&mut s.interval, latency_us);
        if counted {
            let t = &mut s.totals;
            t.counted += 1;
            t.counted_bytes += bytes as u64;
            t.first_done_us.get_or_insert(done_us);
            t.last_done_us = Some(t.last_done_us.map_or(done_us, |l| l.max(done_us)));
            record_us(&mut t.latency, latency_us);
        }
    }

    /// One failed completion; the first error's text is kept.
    pub fn error(&self, what: impl FnOnce() -> String) {
        let mut s = self.lock();
        s.totals.errors += 1;
        if s.totals.first_error.is_none() {
            s.totals.first_error = Some(what());
        }
    }

    /// Completions so far, warm-up included (errors excluded).
    pub fn count(&self) -> u64 {
        self.lock().totals.count
    }

    /// Completions plus failures so far: records no longer in flight.
    pub fn settled(&self) -> u64 {
        let s = self.lock();
        s.totals.count + s.totals.errors
    }

    /// What completed since the previous call, and starts a new interval.
    pub fn take_interval(&self) -> Interval {
        let mut s = self.lock();
        let p99_us = (!s.interval.is_empty()).then(|| s.interval.value_at_quantile(0.99));
        let out = Interval {
            count: s.interval_count,
            bytes: s.interval_bytes,
            p99_us,
        };
        s.interval.reset();
        s.interval_count = 0;
        s.interval_bytes = 0;
        out
    }

    /// Everything so far.
    pub fn totals(&self) -> MeterTotals {
        self.lock().totals.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_records_intended_in_the_window_are_counted() {
        let m = Meter::new();
        m.record(10, 20, 100); // before any window: counted nowhere but the totals
        m.start_window(1_000);
        m.record(999, 1_500, 100); // warm-up record completing late
        m.record(1_000, 1_200, 100);
        m.record(2_000, 2_300, 50);
        let t = m.totals();
        assert_eq!((t.count, t.bytes), (4, 350));
        assert_eq!((t.counted, t.counted_bytes), (2, 150));
        assert_eq!(
            (t.first_done_us, t.last_done_us),
            (Some(1_200), Some(2_300))
        );
        assert_eq!(t.latency.len(), 2);
        assert_eq!(t.latency.max(), 300);
        assert!((t.secs_since(1_000) - 0.0013).abs() < 1e-12);
        assert!((t.span_secs() - 0.0011).abs() < 1e-12);
    }

    #[test]
    fn intervals_reset_and_errors_are_kept() {
        let m = Meter::new();
        m.start_window(0);
        m.record(0, 100, 10);
        m.record(0, 200, 10);
        let i = m.take_interval();
        assert_eq!((i.count, i.bytes), (2, 20));
        assert!(i.p99_us.is_some_and(|p| (199..=201).contains(&p)));
        assert_eq!(m.take_interval(), Interval::default());
        m.error(|| "first".into());
        m.error(|| "second".into());
        let t = m.totals();
        assert_eq!(t.errors, 2);
        assert_eq!(t.first_error.as_deref(), Some("first"));
        assert_eq!(m.settled(), 4);
    }
}
