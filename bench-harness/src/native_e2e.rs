//! `strata-bench native-e2e`: produce through the native client to a broker and
//! consume the same records back, measuring throughput, publish latency (send →
//! acknowledged) and end-to-end latency (send → received).
//!
//! With `--rate N` (MB/s, or `Nmsg/s`) records are sent on a fixed [`Schedule`] and
//! both latencies are measured from each record's *intended* send time, so a stall
//! delays every record scheduled behind it and shows in the tail (coordinated omission
//! corrected). With `--rate max` the producer sends as fast as its buffer allows.
//!
//! [`Schedule`]: crate::schedule::Schedule

use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Args;
use serde_json::{json, Value};
use strata_client::{
    Acks, Admin, AdminConfig, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord,
    SendFuture,
};

use crate::counts::Counts;
use crate::report::{latency_histogram, mb_per_s, record_us, write_json, Latency, Table};
use crate::schedule::Rate;

/// Bytes at the start of each value: the intended send time (µs since the epoch).
const STAMP_BYTES: usize = 8;
/// Acknowledgements waited for in order, at most this many pending (memory bound).
const PENDING_ACKS_MAX: usize = 100_000;

/// The workload of one native end-to-end run, shared by `native-e2e` and `compare`.
#[derive(Args, Clone, Debug)]
pub struct E2eWorkload {
    /// Topic to use (created with one partition if missing).
    #[arg(long, default_value = "strata-bench-e2e")]
    pub topic: String,
    /// Bytes per record value.
    #[arg(long, default_value_t = 1024)]
    pub record_bytes: usize,
    /// `max`, or a fixed rate: MB/s (`100` or `100MB/s`) or messages/s (`5000msg/s`).
    #[arg(long, default_value = "max")]
    pub rate: String,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// 0, 1 or all.
    #[arg(long, default_value = "all")]
    pub acks: String,
    /// Producer batch size in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    pub batch_bytes: usize,
    /// Producer linger in milliseconds.
    #[arg(long, default_value_t = 1)]
    pub linger_ms: u64,
}

impl E2eWorkload {
    /// Rejects parameters no run can use, before any connection is made.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.record_bytes < STAMP_BYTES {
            bail!("--record-bytes must be at least {STAMP_BYTES}");
        }
        self.rate.parse::<Rate>()?;
        self.acks.parse::<Acks>()?;
        Ok(())
    }

    /// JSON form, for the configuration part of reports.
    pub fn to_json(&self) -> Value {
        json!({
            "topic": self.topic,
            "record_bytes": self.record_bytes,
            "rate": self.rate,
            "seconds": self.seconds,
            "acks": self.acks,
            "batch_bytes": self.batch_bytes,
            "linger_ms": self.linger_ms,
        })
    }
}

#[derive(Args, Debug)]
pub struct NativeE2eArgs {
    /// Broker address.
    #[arg(long, default_value = "127.0.0.1:9250")]
    brokers: String,
    #[command(flatten)]
    workload: E2eWorkload,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// What one native end-to-end run measured.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct E2eResult {
    /// Acknowledged megabytes (10^6 bytes) per second over the produce phase.
    pub mb_per_s: f64,
    /// Seconds the produce phase took, until every acknowledgement was in.
    pub produce_secs: f64,
    /// Send (intended time) → acknowledged.
    pub publish: Latency,
    /// Send (intended time) → received by the consumer.
    pub e2e: Latency,
    /// Sent, acknowledged and received records.
    pub counts: Counts,
}

impl E2eResult {
    /// JSON form.
    pub fn to_json(&self) -> Value {
        json!({
            "sent": self.counts.sent,
            "acked": self.counts.acked,
            "received": self.counts.received,
            "counts": self.counts.to_json(),
            "mb_per_s": self.mb_per_s,
            "produce_secs": self.produce_secs,
            "publish": self.publish.to_json(),
            "e2e": self.e2e.to_json(),
        })
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// `strata-bench native-e2e`: one run against `--brokers`, printed as a table.
pub fn run(args: NativeE2eArgs) -> anyhow::Result<()> {
    let w = &args.workload;
    let r = run_once(&args.brokers, w)?;
    let (p, e, c) = (r.publish, r.e2e, r.counts);
    let mut t = Table::new(&[
        "rate",
        "acks",
        "sent",
        "acked",
        "received",
        "MB/s acked",
        "publish p50/p99/p99.9 us",
        "e2e p50/p99/p99.9 us",
        "e2e max us",
    ]);
    t.row(vec![
        w.rate.clone(),
        w.acks.clone(),
        c.sent.to_string(),
        c.acked.to_string(),
        c.received.to_string(),
        format!("{:.1}", r.mb_per_s),
        p.triple(),
        e.triple(),
        format!("{:.0}", e.max_us),
    ]);
    t.print();
    if let Some(shortfall) = c.shortfall() {
        eprintln!("warning: {shortfall}");
    }
    let mut out = json!({
        "benchmark": "native-e2e",
        "config": format!("{args:?}"),
    });
    if let (Some(o), Value::Object(m)) = (out.as_object_mut(), r.to_json()) {
        o.extend(m);
    }
    write_json(args.json.as_deref(), &out)
}

/// Runs the workload `args` once against the broker at `brokers` (the topic is created
/// when missing) and returns what it measured; prints nothing.
pub fn run_once(brokers: &str, args: &E2eWorkload) -> anyhow::Result<E2eResult> {
    args.validate()?;
    let rate: Rate = args.rate.parse()?;
    let brokers = strata_client::parse_brokers(brokers);
    let admin = Admin::connect(AdminConfig {
        brokers: brokers.clone(),
        ..AdminConfig::default()
    })?;
    if admin.describe_topic(&args.topic).wait().is_err() {
        admin
            .create_topic(&args.topic, 1, &[])
            .wait()
            .context("create the benchmark topic")?;
    }
    let end = admin
        .list_offsets(&args.topic, 0, strata_client::OffsetSpec::Latest)
        .wait()?
        .offset;

    // Consumer: from the current end, records the end-to-end latency of each record.
    let (stop_tx, stop_rx) = mpsc::channel::<u64>();
    let consumer_brokers = brokers.clone();
    let topic = args.topic.clone();
    let consumer = std::thread::spawn(
        move || -> anyhow::Result<(hdrhistogram::Histogram<u64>, u64)> {
            let mut c = Consumer::connect(ConsumerConfig {
                brokers: consumer_brokers,
                fetch_max_wait: Duration::from_millis(100),
                ..ConsumerConfig::default()
            })?;
            c.assign(&[(topic.as_str(), 0)]);
            c.seek(&topic, 0, end)?;
            let mut e2e = latency_histogram();
            let (mut received, mut expected) = (0u64, None::<u64>);
            let deadline_after_stop = Duration::from_secs(30);
            let mut stop_seen: Option<Instant> = None;
            loop {
                if expected.is_none() {
                    if let Ok(n) = stop_rx.try_recv() {
                        expected = Some(n);
                        stop_seen = Some(Instant::now());
                    }
                }
                if expected.is_some_and(|n| received >= n)
                    || stop_seen.is_some_and(|t| t.elapsed() > deadline_after_stop)
                {
                    break;
                }
                let records = c.poll(Duration::from_millis(100))?;
                let now = now_us();
                for r in records.iter() {
                    let v = r.value().unwrap_or_default();
                    if v.len() >= STAMP_BYTES {
                        let mut stamp = [0u8; STAMP_BYTES];
                        stamp.copy_from_slice(&v[..STAMP_BYTES]);
                        record_us(&mut e2e, now.saturating_sub(u64::from_le_bytes(stamp)));
                    }
                    received += 1;
                }
            }
            Ok((e2e, received))
        },
    );

    let producer = Producer::connect(ProducerConfig {
        brokers,
        acks: args.acks.parse::<Acks>()?,
        batch_bytes: args.batch_bytes,
        linger: Duration::from_millis(args.linger_ms),
        ..ProducerConfig::default()
    })?;
    // Acknowledgements are awaited on their own thread, in send order.
    let (ack_tx, ack_rx) = mpsc::sync_channel::<(u64, SendFuture)>(PENDING_ACKS_MAX);
    let acker = std::thread::spawn(
        move || -> anyhow::Result<(hdrhistogram::Histogram<u64>, u64)> {
            let mut publish = latency_histogram();
            let mut acked = 0u64;
            for (intended_us, fut) in ack_rx {
                fut.wait().context("a send failed")?;
                record_us(&mut publish, now_us().saturating_sub(intended_us));
                acked += 1;
            }
            Ok((publish, acked))
        },
    );

    let started = Instant::now();
    let start_us = now_us();
    let schedule = rate.schedule(args.record_bytes, started);
    let mut payload = vec![b'x'; args.record_bytes];
    let mut sent = 0u64;
    while started.elapsed() < Duration::from_secs(args.seconds) {
        let intended_us = match schedule {
            Some(s) => {
                if let Some(wait) = s.wait_before(sent, Instant::now()) {
                    std::thread::sleep(wait.min(Duration::from_millis(1)));
                    continue;
                }
                start_us + s.offset(sent).as_micros() as u64
            }
            None => now_us(),
        };
        payload[..STAMP_BYTES].copy_from_slice(&intended_us.to_le_bytes());
        let fut = producer.send(ProducerRecord::new(&args.topic, payload.clone()));
        ack_tx
            .send((intended_us, fut))
            .context("acknowledgement thread stopped")?;
        sent += 1;
    }
    producer.flush();
    drop(ack_tx);
    let (publish, acked) = acker
        .join()
        .map_err(|_| anyhow::anyhow!("ack thread panicked"))??;
    let produce_secs = started.elapsed().as_secs_f64();
    let _ = stop_tx.send(sent);
    let (e2e, received) = consumer
        .join()
        .map_err(|_| anyhow::anyhow!("consumer thread panicked"))??;
    producer.close();

    let counts = Counts {
        sent,
        acked,
        received,
    };
    let bytes = acked * args.record_bytes as u64;
    Ok(E2eResult {
        mb_per_s: mb_per_s(bytes, produce_secs),
        produce_secs,
        publish: Latency::of(&publish),
        e2e: Latency::of(&e2e),
        counts,
    })
}
