//! Graceful shutdown of a real broker process (SIGTERM while a producer streams):
//! requests in flight are answered, every partition directory gets a clean marker
//! that records its end offset, the restart removes the markers while it runs, keeps
//! all data, and opens the logs without a recovery scan.
//!
//! "Without a scan" is observed through the data: after the clean stop, the last byte
//! of one partition's last batch is flipped on disk (same file size). A scan would
//! find that batch's CRC wrong and cut it as a torn tail; an open that trusts the
//! marker keeps it. The control: after a SIGKILL (no marker) the same partition is
//! scanned and the batch is cut, which shows the probe can see a scan.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strata_client::{Acks, Admin, AdminConfig, Producer, ProducerConfig, ProducerRecord};
use strata_engine::clean_marker::{CleanMarker, CLEAN_MARKER_NAME};
use strata_schema::peek_batch_len;
use strata_tests::broker::{high_watermark, read_range, TestBroker};

const DATA_TOPIC: &str = "durable";
const DATA_PARTITIONS: u32 = 3;
/// A topic that never gets a record: its partitions get markers too.
const EMPTY_TOPIC: &str = "empty";
const EMPTY_PARTITIONS: u32 = 2;
/// The one-partition topic whose last batch is flipped on disk.
const PROBE_TOPIC: &str = "probe";
/// Records written before the stop, awaited one by one.
const RECORDS_BEFORE: u64 = 300;
/// Records the streaming producer sends at most (the stop comes long before).
const STREAM_RECORDS_MAX: u64 = 1_000_000;
/// Acknowledgements of the streaming producer awaited before SIGTERM.
const STREAM_ACKS_BEFORE_STOP: u64 = 2_000;
/// Longest wait for those acknowledgements.
const STREAM_WAIT: Duration = Duration::from_secs(10);
/// Sends awaited at once by the streaming producer.
const PENDING_SENDS_MAX: usize = 1_000;

fn admin(broker: &TestBroker) -> Admin {
    Admin::connect(AdminConfig {
        brokers: broker.brokers(),
        ..AdminConfig::default()
    })
    .expect("admin connects")
}

fn value_of(seq: u64) -> Vec<u8> {
    format!("record {seq} {}", "x".repeat((seq % 97) as usize)).into_bytes()
}

fn seq_of(value: &[u8]) -> u64 {
    let text = std::str::from_utf8(value).expect("utf-8 value");
    let seq = text
        .strip_prefix("record ")
        .and_then(|t| t.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a value of this test: {text:?}"));
    assert_eq!(value, value_of(seq), "value of record {seq} is intact");
    seq
}

fn record(seq: u64) -> ProducerRecord {
    let partition = (seq % u64::from(DATA_PARTITIONS)) as u32;
    ProducerRecord::new(DATA_TOPIC, value_of(seq)).partition(partition)
}

/// Every partition directory of the test's topics.
fn partition_dirs(broker: &TestBroker) -> Vec<(String, u32, PathBuf)> {
    let mut dirs = Vec::new();
    for (topic, n) in [
        (DATA_TOPIC, DATA_PARTITIONS),
        (EMPTY_TOPIC, EMPTY_PARTITIONS),
        (PROBE_TOPIC, 1),
    ] {
        for p in 0..n {
            dirs.push((topic.to_owned(), p, broker.partition_dir(topic, p)));
        }
    }
    dirs
}

/// The marker of every partition; panics naming the directories without one.
fn markers(broker: &TestBroker) -> BTreeMap<(String, u32), CleanMarker> {
    let mut found = BTreeMap::new();
    let mut missing = Vec::new();
    for (topic, p, dir) in partition_dirs(broker) {
        match std::fs::read_to_string(dir.join(CLEAN_MARKER_NAME)) {
            Ok(text) => {
                let marker = CleanMarker::decode(&text).unwrap_or_else(|| {
                    panic!("{}: unreadable clean marker {text:?}", dir.display())
                });
                found.insert((topic, p), marker);
            }
            Err(_) => missing.push(dir.display().to_string()),
        }
    }
    assert!(
        missing.is_empty(),
        "no clean marker after a graceful shutdown in {missing:?}\n{}",
        broker.stderr_tail()
    );
    found
}

fn assert_no_markers(broker: &TestBroker, when: &str) {
    for (_, _, dir) in partition_dirs(broker) {
        assert!(dir.is_dir(), "{} does not exist {when}", dir.display());
        assert!(
            !dir.join(CLEAN_MARKER_NAME).exists(),
            "{} still has its clean marker {when}",
            dir.display()
        );
    }
}

/// Flips the last byte of the last batch of the newest segment in `dir`; the file
/// keeps its size.
fn flip_last_batch_byte(dir: &Path) {
    let log = std::fs::read_dir(dir)
        .expect("read partition dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .max()
        .expect("a segment file");
    let bytes = std::fs::read(&log).expect("read segment");
    let mut at = 0;
    let mut batches = 0;
    while at < bytes.len() {
        let len = peek_batch_len(&bytes[at..]).expect("a batch header");
        at += len;
        batches += 1;
    }
    assert_eq!(
        at,
        bytes.len(),
        "{}: batches fill the file exactly",
        log.display()
    );
    assert!(
        batches >= 2,
        "{}: the probe needs two batches",
        log.display()
    );
    let last = bytes.len() - 1;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .expect("open segment");
    file.write_all_at(&[bytes[last] ^ 0xff], last as u64)
        .expect("flip byte");
    file.sync_all().expect("sync segment");
}

/// Streams records to the data topic until a send fails (the broker stopped) or
/// `stop` is set; returns (partition, offset, seq) of every acknowledged one.
fn stream(
    brokers: Vec<String>,
    acked_count: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Vec<(u32, i64, u64)> {
    let producer = Producer::connect(ProducerConfig {
        brokers,
        acks: Acks::Leader,
        retries: 0,
        linger: Duration::from_millis(1),
        request_timeout: Duration::from_secs(10),
        max_block: Duration::from_secs(10),
        ..ProducerConfig::default()
    })
    .expect("producer connects");
    let mut acked = Vec::new();
    let mut pending = std::collections::VecDeque::new();
    let mut failed = false;
    let mut settle =
        |seq: u64, result: strata_client::Result<strata_client::RecordMetadata>| match result {
            Ok(meta) => {
                acked.push((meta.partition, meta.offset, seq));
                acked_count.fetch_add(1, Ordering::Release);
                true
            }
            Err(_) => false,
        };
    for seq in RECORDS_BEFORE..RECORDS_BEFORE + STREAM_RECORDS_MAX {
        if failed || stop.load(Ordering::Acquire) {
            break;
        }
        pending.push_back((seq, producer.send(record(seq))));
        if pending.len() >= PENDING_SENDS_MAX {
            let (seq, send) = pending.pop_front().expect("non-empty");
            failed = !settle(seq, send.wait());
        }
    }
    for (seq, send) in pending {
        settle(seq, send.wait());
    }
    acked
}

/// Reads the data topic: every partition dense from 0 to its high watermark, seqs
/// increasing, every acknowledged record at its offset. Returns the high watermarks.
fn check_data(broker: &TestBroker, acked: &[(u32, i64, u64)]) -> Vec<i64> {
    let admin = admin(broker);
    let mut hws = Vec::new();
    for p in 0..DATA_PARTITIONS {
        let hw = high_watermark(&admin, DATA_TOPIC, p);
        let records = read_range(&broker.brokers(), DATA_TOPIC, p, 0, hw);
        assert_eq!(records.len() as i64, hw, "partition {p}");
        let mut by_offset = BTreeMap::new();
        let mut last = None;
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.offset, i as i64, "partition {p}: dense offsets");
            let seq = seq_of(r.value.as_deref().expect("a value"));
            assert_eq!(
                seq % u64::from(DATA_PARTITIONS),
                u64::from(p),
                "partition {p}"
            );
            assert!(last < Some(seq), "partition {p}: {seq} after {last:?}");
            last = Some(seq);
            by_offset.insert(r.offset, seq);
        }
        for &(ap, offset, seq) in acked.iter().filter(|a| a.0 == p) {
            assert_eq!(
                by_offset.get(&offset),
                Some(&seq),
                "acknowledged record {seq} at {ap}/{offset} is missing\n{}",
                broker.stderr_tail()
            );
        }
        hws.push(hw);
    }
    hws
}

#[test]
fn graceful_shutdown_marks_clean_and_restarts_without_a_scan() {
    let mut broker = TestBroker::start();
    let admin = admin(&broker);
    admin
        .create_topic(DATA_TOPIC, DATA_PARTITIONS, &[])
        .wait()
        .expect("create");
    admin
        .create_topic(EMPTY_TOPIC, EMPTY_PARTITIONS, &[])
        .wait()
        .expect("create");
    admin
        .create_topic(PROBE_TOPIC, 1, &[])
        .wait()
        .expect("create");

    let producer = Producer::connect(ProducerConfig {
        brokers: broker.brokers(),
        acks: Acks::Leader,
        ..ProducerConfig::default()
    })
    .expect("producer connects");
    let mut acked: Vec<(u32, i64, u64)> = (0..RECORDS_BEFORE)
        .map(|seq| producer.send(record(seq)))
        .collect::<Vec<_>>()
        .into_iter()
        .enumerate()
        .map(|(seq, send)| {
            let meta = send.wait().expect("send");
            (meta.partition, meta.offset, seq as u64)
        })
        .collect();
    // Two batches in the probe partition: send_blocking waits for each.
    for i in 0..2 {
        producer
            .send_blocking(ProducerRecord::new(PROBE_TOPIC, format!("probe {i}")))
            .expect("probe send");
    }
    producer.close();
    assert_no_markers(&broker, "while the broker runs");

    // SIGTERM while a producer streams: what it got acknowledged must survive.
    let acked_count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let streamer = std::thread::spawn({
        let (brokers, count, stop) = (
            broker.brokers(),
            Arc::clone(&acked_count),
            Arc::clone(&stop),
        );
        move || stream(brokers, count, stop)
    });
    let started = std::time::Instant::now();
    while acked_count.load(Ordering::Acquire) < STREAM_ACKS_BEFORE_STOP
        && started.elapsed() < STREAM_WAIT
        && !streamer.is_finished()
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    let stop_took = broker.stop_gracefully();
    stop.store(true, Ordering::Release);
    let streamed = streamer.join().expect("streamer");
    assert!(
        !streamed.is_empty(),
        "the streaming producer got no acknowledgement"
    );
    acked.extend_from_slice(&streamed);

    let clean = markers(&broker);
    assert_eq!(clean[&(PROBE_TOPIC.to_owned(), 0)].next_offset, 2);
    for p in 0..EMPTY_PARTITIONS {
        assert_eq!(clean[&(EMPTY_TOPIC.to_owned(), p)].next_offset, 0);
    }
    flip_last_batch_byte(&broker.partition_dir(PROBE_TOPIC, 0));

    let restart_took = broker.restart();
    assert_no_markers(&broker, "after the restart, while the broker runs");
    let admin = self::admin(&broker);
    assert_eq!(
        high_watermark(&admin, PROBE_TOPIC, 0),
        2,
        "the probe partition was scanned (its corrupt last batch was cut) although it \
         was shut down cleanly\n{}",
        broker.stderr_tail()
    );
    let hws = check_data(&broker, &acked);
    for (p, hw) in hws.iter().enumerate() {
        assert_eq!(
            clean[&(DATA_TOPIC.to_owned(), p as u32)].next_offset,
            *hw,
            "partition {p}: the marker records the end offset"
        );
    }
    for p in 0..EMPTY_PARTITIONS {
        assert_eq!(high_watermark(&admin, EMPTY_TOPIC, p), 0);
    }
    println!(
        "graceful stop with a streaming producer: {} ms ({} streamed records acknowledged); \
         clean restart: {} ms",
        stop_took.as_millis(),
        streamed.len(),
        restart_took.as_millis()
    );

    // Control: without a marker the same partition is scanned and the batch cut.
    drop(admin);
    broker.kill();
    let crash_restart_took = broker.restart();
    let admin = self::admin(&broker);
    assert_eq!(
        high_watermark(&admin, PROBE_TOPIC, 0),
        1,
        "after a SIGKILL the recovery scan cuts the corrupt last batch of the probe"
    );
    assert_eq!(
        check_data(&broker, &acked),
        hws,
        "the data survives a crash restart too"
    );
    println!(
        "restart after SIGKILL (scan): {} ms",
        crash_restart_took.as_millis()
    );

    broker.stop_gracefully();
    markers(&broker);
}

/// A consumer's long poll that would wait this long for data...
const LONG_POLL: Duration = Duration::from_secs(30);
/// ...does not hold up a graceful shutdown for longer than this.
const STOP_WITH_LONG_POLL_MAX: Duration = Duration::from_secs(10);

#[test]
fn graceful_shutdown_does_not_wait_out_a_long_poll() {
    let mut broker = TestBroker::start();
    admin(&broker)
        .create_topic("idle", 2, &[])
        .wait()
        .expect("create");
    let polling = Arc::new(AtomicBool::new(false));
    let consumer = std::thread::spawn({
        let (brokers, polling) = (broker.brokers(), Arc::clone(&polling));
        move || {
            let mut consumer = strata_client::Consumer::connect(strata_client::ConsumerConfig {
                brokers,
                fetch_max_wait: LONG_POLL,
                ..strata_client::ConsumerConfig::default()
            })
            .expect("consumer connects");
            consumer.assign(&[("idle", 0), ("idle", 1)]);
            consumer.seek("idle", 0, 0).expect("seek");
            consumer.seek("idle", 1, 0).expect("seek");
            polling.store(true, Ordering::Release);
            let started = std::time::Instant::now();
            // poll_async returns a lost connection at once instead of reconnecting.
            let result = futures_lite::future::block_on(consumer.poll_async(LONG_POLL));
            (started.elapsed(), result.map(|r| r.len()))
        }
    });
    while !polling.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(200)); // the fetch is at the broker, waiting
    let took = broker.stop_gracefully();
    assert!(
        took < STOP_WITH_LONG_POLL_MAX,
        "graceful shutdown took {} ms with a {} ms long poll pending",
        took.as_millis(),
        LONG_POLL.as_millis()
    );
    let (polled, result) = consumer.join().expect("consumer");
    println!(
        "stop took {} ms; the long poll returned after {} ms with {result:?}",
        took.as_millis(),
        polled.as_millis()
    );
}
