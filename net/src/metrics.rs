//! Broker metrics: per-shard and per-partition counters and latency histograms,
//! served as Prometheus text over HTTP (`BrokerConfig::metrics_addr`).
//!
//! Each shard counts into its own thread-local `ShardMetrics` (a shard is one
//! thread, so nothing is shared or locked). A scrape arrives on shard 0, which asks
//! every shard for a copy of its metrics with `invoke_on` and renders them.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use hdrhistogram::Histogram;
use strata_schema::ErrorCode;

use crate::broker::Broker;

/// Highest latency a histogram tracks (larger values are clamped): 10 minutes.
const LATENCY_US_MAX: u64 = 600_000_000;
/// Bytes of an HTTP request head the metrics endpoint reads at most.
const HTTP_REQUEST_BYTES_MAX: usize = 8 * 1024;
/// How long a scrape connection may take to send its request.
const HTTP_READ_TIMEOUT_MS: u64 = 5_000;

/// Bytes and records through one partition (counted on its owner shard).
#[derive(Clone, Copy, Debug, Default)]
pub struct PartitionCounters {
    pub bytes_in: u64,
    pub records_in: u64,
    /// Idempotent producers' retried batches answered with their first offsets.
    pub duplicate_batches: u64,
    pub bytes_out: u64,
    pub records_out: u64,
}

/// One shard's metrics.
#[derive(Clone, Debug)]
pub struct ShardMetrics {
    pub connections_open: u64,
    pub connections_total: u64,
    pub requests_total: u64,
    /// Errors sent to clients, by code.
    pub errors_total: BTreeMap<i16, u64>,
    pub partitions: BTreeMap<(String, u32), PartitionCounters>,
    /// Produce request latency (µs), from decoded request to reply.
    pub produce_latency_us: Histogram<u64>,
    /// Fetch request latency (µs), long-poll waits included.
    pub fetch_latency_us: Histogram<u64>,
    /// Storage I/O of the shard's logs, copied from the engine when scraped.
    pub storage_bytes_written: u64,
    pub storage_fsyncs: u64,
    pub write_latency_us: Histogram<u64>,
    pub fsync_latency_us: Histogram<u64>,
}

impl Default for ShardMetrics {
    fn default() -> Self {
        let hist = || Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid bounds");
        ShardMetrics {
            connections_open: 0,
            connections_total: 0,
            requests_total: 0,
            errors_total: BTreeMap::new(),
            partitions: BTreeMap::new(),
            produce_latency_us: hist(),
            fetch_latency_us: hist(),
            storage_bytes_written: 0,
            storage_fsyncs: 0,
            write_latency_us: hist(),
            fsync_latency_us: hist(),
        }
    }
}

thread_local! {
    static METRICS: RefCell<ShardMetrics> = RefCell::new(ShardMetrics::default());
}

/// Updates this shard's metrics.
pub fn with<R>(f: impl FnOnce(&mut ShardMetrics) -> R) -> R {
    METRICS.with(|m| f(&mut m.borrow_mut()))
}

/// Counts an error sent to a client.
pub fn count_error(code: ErrorCode) {
    with(|m| *m.errors_total.entry(code as i16).or_default() += 1);
}

/// Counts bytes and records through a partition.
pub fn count_partition(topic: &str, partition: u32, f: impl FnOnce(&mut PartitionCounters)) {
    with(|m| {
        let key = (topic.to_owned(), partition);
        match m.partitions.get_mut(&key) {
            Some(c) => f(c),
            None => f(m.partitions.entry(key).or_default()),
        }
    });
}

/// Forgets a deleted topic's partitions.
pub fn forget_topic(topic: &str) {
    with(|m| m.partitions.retain(|(t, _), _| t != topic));
}

/// Records a latency.
pub fn record_latency(hist: fn(&mut ShardMetrics) -> &mut Histogram<u64>, elapsed: Duration) {
    with(|m| hist(m).saturating_record(elapsed.as_micros().max(1) as u64));
}

/// A metric's name, help text, and how to get its value.
type Series<T, V> = (&'static str, &'static str, fn(&T) -> V);
/// A latency histogram's name, help text, and where it is.
type LatencySeries = (
    &'static str,
    &'static str,
    fn(&ShardMetrics) -> &Histogram<u64>,
);

/// Prometheus text for every shard's metrics, in shard order.
pub fn render(shards: &[ShardMetrics]) -> String {
    let mut out = String::new();
    let counter = |out: &mut String, name: &str, help: &str, kind: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    counter(
        &mut out,
        "strata_connections_open",
        "Open client connections.",
        "gauge",
    );
    for (s, m) in shards.iter().enumerate() {
        let _ = writeln!(
            out,
            "strata_connections_open{{shard=\"{s}\"}} {}",
            m.connections_open
        );
    }
    counter(
        &mut out,
        "strata_connections_total",
        "Accepted client connections.",
        "counter",
    );
    for (s, m) in shards.iter().enumerate() {
        let _ = writeln!(
            out,
            "strata_connections_total{{shard=\"{s}\"}} {}",
            m.connections_total
        );
    }
    counter(
        &mut out,
        "strata_requests_total",
        "Requests answered.",
        "counter",
    );
    for (s, m) in shards.iter().enumerate() {
        let _ = writeln!(
            out,
            "strata_requests_total{{shard=\"{s}\"}} {}",
            m.requests_total
        );
    }
    counter(
        &mut out,
        "strata_errors_total",
        "Errors sent to clients, by code.",
        "counter",
    );
    for (s, m) in shards.iter().enumerate() {
        for (code, n) in &m.errors_total {
            let name = ErrorCode::from_i16(*code).name();
            let _ = writeln!(
                out,
                "strata_errors_total{{shard=\"{s}\",code=\"{name}\"}} {n}"
            );
        }
    }
    let partition_series: [Series<PartitionCounters, u64>; 5] = [
        (
            "strata_partition_bytes_in_total",
            "Batch bytes appended.",
            |c| c.bytes_in,
        ),
        (
            "strata_partition_records_in_total",
            "Records appended.",
            |c| c.records_in,
        ),
        (
            "strata_partition_duplicate_batches_total",
            "Retried batches of idempotent producers answered without appending.",
            |c| c.duplicate_batches,
        ),
        (
            "strata_partition_bytes_out_total",
            "Batch bytes fetched.",
            |c| c.bytes_out,
        ),
        (
            "strata_partition_records_out_total",
            "Records fetched.",
            |c| c.records_out,
        ),
    ];
    for (name, help, get) in partition_series {
        counter(&mut out, name, help, "counter");
        for (s, m) in shards.iter().enumerate() {
            for ((t, p), c) in &m.partitions {
                let _ = writeln!(
                    out,
                    "{name}{{shard=\"{s}\",topic=\"{t}\",partition=\"{p}\"}} {}",
                    get(c)
                );
            }
        }
    }
    let storage: [Series<ShardMetrics, u64>; 2] = [
        (
            "strata_storage_bytes_written_total",
            "Log bytes written to disk.",
            |m| m.storage_bytes_written,
        ),
        (
            "strata_storage_fsyncs_total",
            "fdatasync calls that made appends durable.",
            |m| m.storage_fsyncs,
        ),
    ];
    for (name, help, get) in storage {
        counter(&mut out, name, help, "counter");
        for (s, m) in shards.iter().enumerate() {
            let _ = writeln!(out, "{name}{{shard=\"{s}\"}} {}", get(m));
        }
    }
    let latencies: [LatencySeries; 4] = [
        (
            "strata_write_latency_us",
            "Log write latency (one aligned O_DIRECT write per cycle) in microseconds.",
            |m| &m.write_latency_us,
        ),
        (
            "strata_fsync_latency_us",
            "fdatasync latency of durable appends in microseconds.",
            |m| &m.fsync_latency_us,
        ),
        (
            "strata_produce_latency_us",
            "Produce request latency in microseconds.",
            |m| &m.produce_latency_us,
        ),
        (
            "strata_fetch_latency_us",
            "Fetch request latency in microseconds (long polls included).",
            |m| &m.fetch_latency_us,
        ),
    ];
    for (name, help, get) in latencies {
        counter(&mut out, name, help, "summary");
        for (s, m) in shards.iter().enumerate() {
            let h = get(m);
            for q in [0.5, 0.99, 0.999] {
                let v = if h.is_empty() {
                    0
                } else {
                    h.value_at_quantile(q)
                };
                let _ = writeln!(out, "{name}{{shard=\"{s}\",quantile=\"{q}\"}} {v}");
            }
            let _ = writeln!(out, "{name}_count{{shard=\"{s}\"}} {}", h.len());
        }
    }
    out
}

/// Serves `GET <anything>` on `addr` with every shard's metrics until the shard
/// stops. Runs on one shard.
pub async fn serve(broker: Rc<Broker>, listener: TcpListener) {
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            broker.shard.stopped().await;
            None
        })
        .await;
        match accepted {
            None => return,
            Some(Ok(stream)) => {
                let b = Rc::clone(&broker);
                glommio::spawn_local(async move {
                    if let Err(e) = scrape(b, stream).await {
                        tracing::debug!(error = %e, "metrics scrape failed");
                    }
                })
                .detach();
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "metrics accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Binds the metrics listener.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).map_err(|e| e.to_string())
}

async fn scrape(broker: Rc<Broker>, mut stream: TcpStream) -> std::io::Result<()> {
    stream
        .set_read_timeout(Some(Duration::from_millis(HTTP_READ_TIMEOUT_MS)))
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < HTTP_REQUEST_BYTES_MAX {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let mut shards = Vec::with_capacity(broker.shard.shard_count());
    for s in 0..broker.shard.shard_count() {
        match broker
            .shard
            .invoke_on(s, |shard| async move {
                let mut m = with(|m| m.clone());
                if let Some(b) = shard.local::<Broker>() {
                    let io = b.env.metrics.snapshot();
                    m.storage_bytes_written = io.bytes_written;
                    m.storage_fsyncs = io.fsyncs;
                    m.write_latency_us = io.write_latency_us;
                    m.fsync_latency_us = io.fsync_latency_us;
                }
                m
            })
            .await
        {
            Ok(m) => shards.push(m),
            Err(_) => shards.push(ShardMetrics::default()),
        }
    }
    let body = render(&shards);
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes()).await?;
    stream.flush().await?;
    stream.close().await
}
