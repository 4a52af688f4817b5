//! The once-a-second view of a running load: a progress line on stderr (sent, acked,
//! received, MB/s, the interval's p99), and the same figures kept as the run's
//! throughput-over-time series for the report and the plot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::load::meter::Meter;

/// Time between progress samples.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// One second of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    /// Seconds since the run started, at the end of this interval.
    pub t_secs: f64,
    pub sent_msgs_per_s: f64,
    pub acked_msgs_per_s: f64,
    pub acked_mb_per_s: f64,
    /// Summed over consumer groups.
    pub received_msgs_per_s: f64,
    pub received_mb_per_s: f64,
    /// p99 of the interval's acknowledgements / receipts, µs.
    pub publish_p99_us: Option<u64>,
    pub e2e_p99_us: Option<u64>,
}

impl Sample {
    /// JSON form.
    pub fn to_json(&self) -> Value {
        json!({
            "t_secs": self.t_secs,
            "sent_msgs_per_s": self.sent_msgs_per_s,
            "acked_msgs_per_s": self.acked_msgs_per_s,
            "acked_mb_per_s": self.acked_mb_per_s,
            "received_msgs_per_s": self.received_msgs_per_s,
            "received_mb_per_s": self.received_mb_per_s,
            "publish_p99_us": self.publish_p99_us,
            "e2e_p99_us": self.e2e_p99_us,
        })
    }
}

/// What the progress thread watches.
#[derive(Clone)]
pub struct Watched {
    /// Records handed to producers.
    pub sent: Arc<AtomicU64>,
    pub publish: Arc<Meter>,
    /// One meter per consumer group (none for produce-only).
    pub groups: Vec<Arc<Meter>>,
}

/// The running progress thread.
pub struct Progress {
    stop: mpsc::Sender<()>,
    handle: JoinHandle<Vec<Sample>>,
}

impl Progress {
    /// Samples `watched` every second from now; prints a line each time unless `quiet`.
    pub fn start(watched: Watched, quiet: bool) -> Progress {
        let (stop, stopped) = mpsc::channel::<()>();
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            let mut last = started;
            let mut last_sent = 0u64;
            let mut samples = Vec::new();
            loop {
                let stop_now = !matches!(
                    stopped.recv_timeout(PROGRESS_INTERVAL),
                    Err(mpsc::RecvTimeoutError::Timeout)
                );
                let now = Instant::now();
                let secs = now.duration_since(last).as_secs_f64().max(1e-6);
                last = now;
                let sent = watched.sent.load(Ordering::Relaxed);
                let publish = watched.publish.take_interval();
                let mut received = (0u64, 0u64);
                let mut e2e_p99: Option<u64> = None;
                for g in &watched.groups {
                    let i = g.take_interval();
                    received.0 += i.count;
                    received.1 += i.bytes;
                    e2e_p99 = e2e_p99.max(i.p99_us);
                }
                let sample = Sample {
                    t_secs: now.duration_since(started).as_secs_f64(),
                    sent_msgs_per_s: sent.saturating_sub(last_sent) as f64 / secs,
                    acked_msgs_per_s: publish.count as f64 / secs,
                    acked_mb_per_s: publish.bytes as f64 / 1e6 / secs,
                    received_msgs_per_s: received.0 as f64 / secs,
                    received_mb_per_s: received.1 as f64 / 1e6 / secs,
                    publish_p99_us: publish.p99_us,
                    e2e_p99_us: e2e_p99,
                };
                last_sent = sent;
                if !quiet && !stop_now {
                    eprintln!("{}", line(&sample, sent, &watched));
                }
                // A last, partial interval is kept only if it carries anything.
                if !stop_now || sample.acked_msgs_per_s > 0.0 || sample.received_msgs_per_s > 0.0 {
                    samples.push(sample);
                }
                if stop_now {
                    return samples;
                }
            }
        });
        Progress { stop, handle }
    }

    /// Stops sampling and returns the samples.
    pub fn finish(self) -> Vec<Sample> {
        let _ = self.stop.send(());
        self.handle.join().unwrap_or_default()
    }
}

fn p99(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |us| format!("{us}"))
}

/// The progress line of one sample.
fn line(s: &Sample, sent: u64, w: &Watched) -> String {
    let acked = w.publish.count();
    let mut out = format!(
        "[{:>5.0} s] sent {sent} acked {acked} | publish {:.1} MB/s {:.0} msg/s p99 {} us",
        s.t_secs,
        s.acked_mb_per_s,
        s.acked_msgs_per_s,
        p99(s.publish_p99_us)
    );
    if !w.groups.is_empty() {
        let received: u64 = w.groups.iter().map(|g| g.count()).sum();
        out.push_str(&format!(
            " | received {received} {:.1} MB/s p99 {} us",
            s.received_mb_per_s,
            p99(s.e2e_p99_us)
        ));
    }
    out
}
