//! Compacted topics written by Kafka clients (librdkafka): the broker's background
//! cleaner compacts their Kafka-format, compressed batches down to the newest value
//! per key, and a consumer reading from the start sees exactly those records at their
//! original offsets. Records without a key are refused on a compacted topic with
//! INVALID_RECORD, through the Kafka listener and the native one.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use strata_tests::broker::TestBroker;
use strata_tests::kafka::{self, read_record, ReadRecord, TestRecord, KAFKA_TIMEOUT};

/// How often the test broker's cleaner runs.
const CLEANER_INTERVAL_MS: &str = "200";
/// Longest the test waits for the cleaner to have compacted everything.
const COMPACTION_DEADLINE: Duration = Duration::from_secs(120);

fn create_topic(bootstrap: &str, topic: &str, configs: &[(&str, &str)]) {
    let admin = kafka::admin(bootstrap);
    let mut new = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    for (k, v) in configs {
        new = new.set(k, v);
    }
    let results = futures_lite::future::block_on(admin.create_topics(
        [&new],
        &AdminOptions::new().operation_timeout(Some(KAFKA_TIMEOUT)),
    ))
    .expect("create_topics request");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
    }
}

fn record(key: Option<&str>, value: Option<&str>) -> TestRecord {
    TestRecord {
        key: key.map(|k| k.as_bytes().to_vec()),
        value: value.map(|v| v.as_bytes().to_vec()),
        headers: vec![("h".to_owned(), Some(b"x".to_vec()))],
        timestamp_ms: None,
    }
}

/// Every record of partition 0 from the start up to and including `last_offset`.
fn read_from_start(bootstrap: &str, topic: &str, last_offset: i64) -> Vec<ReadRecord> {
    let consumer: BaseConsumer = kafka::consumer(bootstrap, None, &[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("partition offset");
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + KAFKA_TIMEOUT;
    let mut out: Vec<ReadRecord> = Vec::new();
    while out.last().is_none_or(|r| r.offset < last_offset) {
        assert!(
            Instant::now() < deadline,
            "read stopped at {:?} before offset {last_offset}",
            out.last().map(|r| r.offset)
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push(read_record(&m)),
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
    }
    out
}

/// Bytes of the partition's segment files on disk.
fn log_bytes(broker: &TestBroker, topic: &str) -> u64 {
    std::fs::read_dir(broker.partition_dir(topic, 0))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn a_kafka_produced_compacted_topic_shrinks_to_the_newest_value_per_key() {
    let broker = TestBroker::start_with_args(1, &["--cleaner-interval-ms", CLEANER_INTERVAL_MS]);
    let bootstrap = broker.kafka_addr();
    let topic = "changelog";
    // Small time-rolled segments, so that everything but the last record is in
    // closed segments the cleaner may rewrite.
    let segment_ms = 2_000u64;
    create_topic(
        &bootstrap,
        topic,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "65536"),
            ("segment.ms", &segment_ms.to_string()),
        ],
    );
    let producer = kafka::producer(
        &bootstrap,
        &[("compression.type", "lz4"), ("linger.ms", "20")],
    );
    let keys = 40;
    let rounds = 30;
    // Values that do not compress away, so that the segments roll by size too.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = move || {
        (0..150)
            .map(|_| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                format!("{:02x}", (seed >> 56) as u8)
            })
            .collect::<String>()
    };
    let mut newest: BTreeMap<String, (i64, Option<String>)> = BTreeMap::new();
    for round in 0..rounds {
        // The last key is written in the first round only: its one record survives
        // far below the others, across a gap.
        let records: Vec<TestRecord> = (0..keys)
            .filter(|&k| round == 0 || k + 1 < keys)
            .map(|k| {
                let key = format!("key-{k:03}");
                // Two keys end deleted: their last write is a tombstone.
                let value =
                    (round + 1 < rounds || k >= 2).then(|| format!("{round}:{k}:{}", noise()));
                record(Some(&key), value.as_deref())
            })
            .collect();
        let offsets = kafka::produce(&producer, topic, Some(0), &records);
        for (r, (_, offset)) in records.iter().zip(offsets) {
            let key = String::from_utf8(r.key.clone().unwrap()).unwrap();
            let value = r
                .value
                .as_ref()
                .map(|v| String::from_utf8(v.clone()).unwrap());
            newest.insert(key, (offset, value));
        }
    }
    // Past segment.ms, one more record rolls the segment: every overwrite is now in
    // a closed segment.
    std::thread::sleep(Duration::from_millis(segment_ms + 500));
    let marker = kafka::produce(
        &producer,
        topic,
        Some(0),
        &[record(Some("marker"), Some("end"))],
    );
    let last_offset = marker[0].1;
    assert_eq!(last_offset, (keys + (rounds - 1) * (keys - 1)) as i64);
    newest.insert("marker".into(), (last_offset, Some("end".into())));
    let bytes_before = log_bytes(&broker, topic);

    let mut expected: Vec<(i64, String, Option<String>)> = newest
        .into_iter()
        .map(|(k, (offset, v))| (offset, k, v))
        .collect();
    expected.sort();
    let deadline = Instant::now() + COMPACTION_DEADLINE;
    let seen = loop {
        let seen: Vec<(i64, String, Option<String>)> =
            read_from_start(&bootstrap, topic, last_offset)
                .into_iter()
                .map(|r| {
                    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
                    (
                        r.offset,
                        text(r.record.key.unwrap()),
                        r.record.value.map(text),
                    )
                })
                .collect();
        if seen == expected || Instant::now() > deadline {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(
        seen.len(),
        expected.len(),
        "after {COMPACTION_DEADLINE:?} the cleaner left {} records, not the {} newest per key\n{}",
        seen.len(),
        expected.len(),
        broker.stderr_tail()
    );
    assert_eq!(
        seen, expected,
        "exactly the newest record per key, at its offset"
    );
    let offsets: Vec<i64> = seen.iter().map(|r| r.0).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "offsets increase");
    assert!(
        offsets.windows(2).any(|w| w[1] > w[0] + 1),
        "compaction leaves gaps"
    );
    assert_eq!(
        seen.iter().filter(|r| r.2.is_none()).count(),
        2,
        "tombstones stay until delete.retention.ms"
    );
    let bytes_after = log_bytes(&broker, topic);
    eprintln!("compacted log: {bytes_before} bytes before, {bytes_after} after");
    assert!(
        bytes_after < bytes_before / 4,
        "{bytes_after} bytes after compaction vs {bytes_before} before"
    );
}

#[test]
fn keyless_records_on_a_compacted_topic_are_invalid_record() {
    let broker = TestBroker::start();
    let bootstrap = broker.kafka_addr();
    create_topic(&bootstrap, "compacted", &[("cleanup.policy", "compact")]);
    create_topic(&bootstrap, "plain", &[]);
    let producer = kafka::producer(&bootstrap, &[("message.timeout.ms", "20000")]);

    let keyless: FutureRecord<'_, [u8], [u8]> =
        FutureRecord::to("compacted").payload(&b"no key"[..]);
    let delivery = producer
        .send_result(keyless)
        .unwrap_or_else(|(e, _)| panic!("enqueue: {e}"));
    let result = futures_lite::future::block_on(delivery).expect("delivery completes");
    match result {
        Err((KafkaError::MessageProduction(code), _)) => {
            assert_eq!(code, RDKafkaErrorCode::InvalidRecord)
        }
        other => panic!("expected INVALID_RECORD, got {other:?}"),
    }
    // Keyed records on the compacted topic, and keyless ones elsewhere, are fine.
    kafka::produce(
        &producer,
        "compacted",
        Some(0),
        &[record(Some("k"), Some("v"))],
    );
    kafka::produce(&producer, "plain", Some(0), &[record(None, Some("v"))]);

    // The native listener refuses them too, with its own code.
    let out = broker.cli(&["produce", "compacted"], Some(b"no key here\n"));
    out.assert_user_error();
    assert!(out.stderr.contains("INVALID_RECORD"), "{out}");
    assert!(out.stderr.contains("no key"), "{out}");
    broker
        .cli(
            &["produce", "compacted", "--key-separator", ":"],
            Some(b"k:v\n"),
        )
        .assert_success();
    broker
        .cli(&["produce", "plain"], Some(b"no key here\n"))
        .assert_success();
    // What was refused was not written: the compacted topic holds the two keyed
    // records only.
    let read = read_from_start(&bootstrap, "compacted", 1);
    let keys: Vec<Option<Vec<u8>>> = read.iter().map(|r| r.record.key.clone()).collect();
    assert_eq!(keys, [Some(b"k".to_vec()), Some(b"k".to_vec())]);
}
