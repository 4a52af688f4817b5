//! The counted window of a timed run: a warm-up that is not counted, then a span in
//! which completed bytes are counted, ended by time or by a byte budget. CPU time and
//! device counters are snapshotted at the window's edges.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::proc_stats::{Snapshot, Usage};

/// When a timed run starts counting and when it stops.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Time before counting starts (files created, caches warm).
    pub warmup: Duration,
    /// Longest counted time.
    pub measure: Duration,
    /// Stop once this many bytes were counted, if set.
    pub bytes_max: Option<u64>,
}

/// Counts completions inside a budget's window.
#[derive(Debug)]
pub struct Window {
    dir: PathBuf,
    warm_end: Instant,
    stop_at: Instant,
    bytes_max: u64,
    bytes: u64,
    ops: u64,
    /// When counting stopped early because `bytes_max` was reached.
    bytes_reached_at: Option<Instant>,
    start_snap: Option<Snapshot>,
    end_snap: Option<Snapshot>,
}

impl Window {
    /// A window starting now; `dir` selects the block device whose counters are read.
    pub fn new(dir: &Path, budget: &Budget) -> Self {
        let now = Instant::now();
        let warm_end = now + budget.warmup;
        Window {
            dir: dir.to_path_buf(),
            warm_end,
            stop_at: warm_end + budget.measure,
            bytes_max: budget.bytes_max.unwrap_or(u64::MAX),
            bytes: 0,
            ops: 0,
            bytes_reached_at: None,
            start_snap: None,
            end_snap: None,
        }
    }

    /// Whether nothing more should be issued; snapshots usage when an edge is passed.
    pub fn done(&mut self, now: Instant) -> bool {
        if self.start_snap.is_none() && now >= self.warm_end {
            self.start_snap = Some(Snapshot::take(&self.dir));
        }
        let done = now >= self.stop_at || self.bytes_reached_at.is_some();
        if done && self.end_snap.is_none() {
            self.end_snap = Some(Snapshot::take(&self.dir));
        }
        done
    }

    /// Whether the latency of an operation issued at `issued` is recorded.
    pub fn counts(&self, issued: Instant) -> bool {
        issued >= self.warm_end && issued < self.stop_at
    }

    /// Notes `len` bytes completed at `done`.
    pub fn complete(&mut self, len: usize, done: Instant) {
        if done >= self.warm_end && done <= self.stop_at && self.bytes_reached_at.is_none() {
            self.bytes += len as u64;
            self.ops += 1;
            if self.bytes >= self.bytes_max {
                self.bytes_reached_at = Some(done);
            }
        }
    }

    /// Counted (bytes, operations, seconds) and the usage over the window.
    pub fn finish(self) -> (u64, u64, f64, Usage) {
        let end = self.bytes_reached_at.unwrap_or(self.stop_at);
        let end_snap = self.end_snap.unwrap_or_else(|| Snapshot::take(&self.dir));
        let start_snap = self.start_snap.unwrap_or(end_snap);
        let wall = end.saturating_duration_since(self.warm_end);
        (
            self.bytes,
            self.ops,
            wall.as_secs_f64(),
            Usage::between(&start_snap, &end_snap, wall),
        )
    }
}
