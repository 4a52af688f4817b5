//! Storage metrics of one shard: bytes written, write cycles and fdatasyncs, and
//! their latency distributions. Shard-local (`Rc`), shared by the shard's logs, read
//! by the broker's metrics endpoint.

use std::cell::RefCell;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest latency tracked precisely (longer ones are clamped).
const LATENCY_US_MAX: u64 = 60_000_000;

/// Counters and latency histograms of a shard's storage I/O.
#[derive(Debug)]
pub struct StorageMetrics {
    inner: RefCell<Inner>,
}

#[derive(Debug)]
struct Inner {
    bytes_written: u64,
    writes: u64,
    fsyncs: u64,
    write_latency_us: Histogram<u64>,
    fsync_latency_us: Histogram<u64>,
}

/// A copy of the metrics at one moment.
#[derive(Clone, Debug)]
pub struct StorageMetricsSnapshot {
    pub bytes_written: u64,
    pub writes: u64,
    pub fsyncs: u64,
    pub write_latency_us: Histogram<u64>,
    pub fsync_latency_us: Histogram<u64>,
}

impl Default for StorageMetrics {
    fn default() -> Self {
        let h =
            || Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid histogram bounds");
        StorageMetrics {
            inner: RefCell::new(Inner {
                bytes_written: 0,
                writes: 0,
                fsyncs: 0,
                write_latency_us: h(),
                fsync_latency_us: h(),
            }),
        }
    }
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, LATENCY_US_MAX)
}

impl StorageMetrics {
    /// Records one data write of `bytes` that took `took`.
    pub fn record_write(&self, bytes: u64, took: Duration) {
        let mut m = self.inner.borrow_mut();
        m.bytes_written += bytes;
        m.writes += 1;
        let _ = m.write_latency_us.record(micros(took));
    }

    /// Records one fdatasync that took `took`.
    pub fn record_fsync(&self, took: Duration) {
        let mut m = self.inner.borrow_mut();
        m.fsyncs += 1;
        let _ = m.fsync_latency_us.record(micros(took));
    }

    /// The current values.
    pub fn snapshot(&self) -> StorageMetricsSnapshot {
        let m = self.inner.borrow();
        StorageMetricsSnapshot {
            bytes_written: m.bytes_written,
            writes: m.writes,
            fsyncs: m.fsyncs,
            write_latency_us: m.write_latency_us.clone(),
            fsync_latency_us: m.fsync_latency_us.clone(),
        }
    }
}
