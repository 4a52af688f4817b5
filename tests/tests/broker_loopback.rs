//! Loopback measurement through the client against a real broker process: produce
//! 1 KiB records with acks=all to one partition as fast as the client goes (MB/s),
//! then at a fixed rate with a consumer reading along (end-to-end latency
//! percentiles). It reports numbers and never fails on them; it is ignored by default:
//!
//! `cargo test -p strata-tests --release --test broker_loopback -- --ignored --nocapture`
//!
//! Environment: `STRATA_LOOPBACK_SECS` (default 5) per phase, `STRATA_LOOPBACK_MBPS`
//! (default 50) for the fixed rate.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use strata_client::{
    Acks, Admin, AdminConfig, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord,
};
use strata_tests::broker::TestBroker;

/// Bytes of a record value.
const RECORD_BYTES: usize = 1024;
/// Sends awaited at once in the throughput phase.
const PENDING_SENDS_MAX: usize = 20_000;
/// Largest latency the histogram holds exactly (larger ones count as this).
const LATENCY_US_MAX: u64 = 60_000_000;
/// Longest a record may take end to end before the latency phase gives up on it.
const CONSUME_TAIL_TIMEOUT: Duration = Duration::from_secs(30);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn producer(broker: &TestBroker) -> Producer {
    Producer::connect(ProducerConfig {
        brokers: broker.brokers(),
        acks: Acks::All,
        linger: Duration::from_millis(1),
        ..ProducerConfig::default()
    })
    .expect("producer connects")
}

fn throughput(broker: &TestBroker, phase: Duration) {
    let producer = producer(broker);
    let value = vec![b'v'; RECORD_BYTES];
    let mut pending = VecDeque::new();
    let started = Instant::now();
    let mut acked = 0u64;
    while started.elapsed() < phase {
        pending.push_back(producer.send(ProducerRecord::new("tput", value.clone()).partition(0)));
        if pending.len() >= PENDING_SENDS_MAX {
            pending
                .pop_front()
                .expect("non-empty")
                .wait()
                .expect("send");
            acked += 1;
        }
    }
    for send in pending {
        send.wait().expect("send");
        acked += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    let bytes = acked as f64 * RECORD_BYTES as f64;
    println!(
        "throughput: {acked} x {RECORD_BYTES} B records, acks=all, one partition, in {secs:.2} s: \
         {:.1} MB/s ({:.0} records/s)",
        bytes / secs / 1e6,
        acked as f64 / secs
    );
}

fn latency(broker: &TestBroker, phase: Duration, mbps: u64) {
    let records_per_sec = mbps as f64 * 1e6 / RECORD_BYTES as f64;
    let total = (records_per_sec * phase.as_secs_f64()) as u64;
    let base = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    // The consumer measures from each record's scheduled send time (carried in the
    // value as ns since `base`), so a stalled producer shows up as latency.
    let consumer = std::thread::spawn({
        let (brokers, done) = (broker.brokers(), Arc::clone(&done));
        move || {
            let mut consumer = Consumer::connect(ConsumerConfig {
                brokers,
                fetch_max_wait: Duration::from_millis(100),
                ..ConsumerConfig::default()
            })
            .expect("consumer connects");
            consumer.assign(&[("lat", 0)]);
            consumer.seek("lat", 0, 0).expect("seek");
            let mut histogram =
                Histogram::<u64>::new_with_bounds(1, LATENCY_US_MAX, 3).expect("histogram");
            let mut seen = 0u64;
            let mut last_progress = Instant::now();
            while seen < total && last_progress.elapsed() < CONSUME_TAIL_TIMEOUT {
                let records = consumer.poll(Duration::from_millis(200)).expect("poll");
                let now_ns = base.elapsed().as_nanos() as u64;
                for r in records.iter() {
                    let value = r.value().expect("value");
                    let mut ns = [0u8; 8];
                    ns.copy_from_slice(&value[..8]);
                    let sent_ns = u64::from_le_bytes(ns);
                    histogram.saturating_record(now_ns.saturating_sub(sent_ns) / 1_000);
                    seen += 1;
                    last_progress = Instant::now();
                }
            }
            done.store(true, Ordering::Release);
            (seen, histogram)
        }
    });
    let producer = producer(broker);
    let mut pending = VecDeque::new();
    let mut value = vec![b'v'; RECORD_BYTES];
    for i in 0..total {
        let due = Duration::from_secs_f64(i as f64 / records_per_sec);
        let now = base.elapsed();
        if due > now {
            std::thread::sleep(due - now);
        }
        value[..8].copy_from_slice(&(due.as_nanos() as u64).to_le_bytes());
        pending.push_back(producer.send(ProducerRecord::new("lat", value.clone()).partition(0)));
        while let Some(result) = pending.front_mut().and_then(|f| f.try_take()) {
            result.expect("send");
            pending.pop_front();
        }
    }
    for send in pending {
        send.wait().expect("send");
    }
    let (seen, h) = consumer.join().expect("consumer");
    assert!(done.load(Ordering::Acquire));
    println!(
        "end-to-end at {mbps} MB/s ({records_per_sec:.0} records/s of {RECORD_BYTES} B, acks=all, one partition): \
         {seen}/{total} records; p50 {} us, p99 {} us, p99.9 {} us, max {} us",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
}

#[test]
#[ignore = "a measurement, not a check: run with --ignored --nocapture (ideally --release)"]
fn loopback_produce_throughput_and_end_to_end_latency() {
    let phase = Duration::from_secs(env_u64("STRATA_LOOPBACK_SECS", 5));
    let mbps = env_u64("STRATA_LOOPBACK_MBPS", 50);
    let broker = TestBroker::start();
    let admin = Admin::connect(AdminConfig {
        brokers: broker.brokers(),
        ..AdminConfig::default()
    })
    .expect("admin connects");
    admin.create_topic("tput", 1, &[]).wait().expect("create");
    admin.create_topic("lat", 1, &[]).wait().expect("create");
    throughput(&broker, phase);
    latency(&broker, phase, mbps);
}
