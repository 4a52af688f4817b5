//! librdkafka (an independently written Kafka client, through the `rdkafka` crate)
//! against the broker's Kafka listener: admin, every compression codec with keys,
//! headers and timestamps, consumer groups (classic and KIP-848), commits across a
//! restart, timestamps lookups, and records crossing between the Kafka and native
//! protocols.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures_lite::future::block_on;
use rdkafka::admin::{AdminOptions, AlterConfig, NewPartitions, ResourceSpecifier};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use strata_client::{
    Consumer as NativeConsumer, ConsumerConfig, Producer as NativeProducer, ProducerConfig,
    ProducerRecord,
};
use strata_tests::broker::TestBroker;
use strata_tests::kafka::*;

/// Record timestamps start here: recent, so retention (7 days by default) keeps them.
fn base_ms() -> i64 {
    static BASE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
            - 3_600_000
    })
}

fn rec(i: usize) -> TestRecord {
    TestRecord {
        key: Some(format!("key-{}", i % 7).into_bytes()),
        value: Some(format!("value-{i}-{}", "x".repeat(i % 50)).into_bytes()),
        headers: vec![
            ("h1".to_owned(), Some(format!("hv{i}").into_bytes())),
            ("empty".to_owned(), None),
        ],
        timestamp_ms: Some(base_ms() + i as i64),
    }
}

#[test]
fn admin_create_describe_alter_delete() {
    let broker = TestBroker::start();
    let addr = broker.kafka_addr();
    let admin = admin(&addr);
    let opts = AdminOptions::new().operation_timeout(Some(KAFKA_TIMEOUT));
    create_topic(&addr, "adm", 2);

    // A second create of the same name fails with TOPIC_ALREADY_EXISTS.
    let again = rdkafka::admin::NewTopic::new("adm", 2, rdkafka::admin::TopicReplication::Fixed(1));
    let r = block_on(admin.create_topics([&again], &opts)).unwrap();
    assert!(
        matches!(
            &r[0],
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists))
        ),
        "{r:?}"
    );

    // Describe: the topic's configs, the defaults marked as such.
    let res = block_on(admin.describe_configs([&ResourceSpecifier::Topic("adm")], &opts)).unwrap();
    let cfg = res[0].as_ref().expect("describe adm");
    let retention = cfg.get("retention.ms").expect("retention.ms is described");
    assert!(retention.is_default, "{retention:?}");

    // Alter, then describe again: the override shows.
    let alter = AlterConfig::new(ResourceSpecifier::Topic("adm")).set("retention.ms", "3600000");
    let r = block_on(admin.alter_configs([&alter], &opts)).unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    let res = block_on(admin.describe_configs([&ResourceSpecifier::Topic("adm")], &opts)).unwrap();
    let cfg = res[0].as_ref().unwrap();
    let retention = cfg.get("retention.ms").unwrap();
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    assert!(!retention.is_default);
    // ... and the native CLI sees the same setting.
    let out = broker.cli(&["topic", "describe", "adm"], None);
    out.assert_success();
    assert!(out.stdout.contains("3600000"), "{}", out.stdout);

    // An invalid value changes nothing. (rdkafka 0.39 reports every AlterConfigs
    // resource as Ok, whatever the broker answered; kafka_python_check.py checks the
    // INVALID_CONFIG answer itself.)
    let bad = AlterConfig::new(ResourceSpecifier::Topic("adm")).set("retention.ms", "soon");
    block_on(admin.alter_configs([&bad], &opts)).unwrap();
    let res = block_on(admin.describe_configs([&ResourceSpecifier::Topic("adm")], &opts)).unwrap();
    let cfg = res[0].as_ref().unwrap();
    assert_eq!(
        cfg.get("retention.ms").unwrap().value.as_deref(),
        Some("3600000")
    );

    // More partitions.
    let r = block_on(admin.create_partitions([&NewPartitions::new("adm", 4)], &opts)).unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    let md = admin
        .inner()
        .fetch_metadata(Some("adm"), KAFKA_TIMEOUT)
        .expect("metadata");
    assert_eq!(md.topics()[0].partitions().len(), 4);

    // Delete: gone from metadata and from the native listing.
    let r = block_on(admin.delete_topics(&["adm"], &opts)).unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    let out = broker.cli(&["topic", "list"], None);
    assert!(
        !out.stdout
            .lines()
            .any(|l| l.split_whitespace().next() == Some("adm")),
        "{}",
        out.stdout
    );
}

#[test]
fn every_codec_round_trips_keys_headers_and_timestamps() {
    let broker = TestBroker::start();
    let addr = broker.kafka_addr();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        create_topic(&addr, &topic, 3);
        let p = producer(
            &addr,
            &[("compression.type", codec), ("batch.num.messages", "50")],
        );
        let records: Vec<TestRecord> = (0..300).map(rec).collect();
        let acked = produce(&p, &topic, None, &records);
        let c = consumer(&addr, None, &[]);
        let mut tpl = TopicPartitionList::new();
        for part in 0..3 {
            tpl.add_partition_offset(&topic, part, Offset::Beginning)
                .unwrap();
        }
        c.assign(&tpl).unwrap();
        let got = poll_records(&c, records.len());
        // Every acknowledged record is there once, intact, where the ack said.
        for (r, (part, offset)) in records.iter().zip(&acked) {
            let found: Vec<_> = got
                .iter()
                .filter(|g| g.partition == *part && g.offset == *offset)
                .collect();
            assert_eq!(found.len(), 1, "{codec}: record at {part}/{offset}");
            assert_eq!(&found[0].record, r, "{codec}: record at {part}/{offset}");
        }
        // Offsets are dense per partition, and keys stay on one partition.
        for (part, recs) in by_partition(&got) {
            let offsets: Vec<i64> = recs.iter().map(|r| r.offset).collect();
            let want: Vec<i64> = (0..recs.len() as i64).collect();
            assert_eq!(offsets, want, "{codec}: partition {part}");
        }
        let mut key_parts = std::collections::BTreeMap::new();
        for g in &got {
            key_parts
                .entry(g.record.key.clone())
                .or_insert_with(BTreeSet::new)
                .insert(g.partition);
        }
        assert!(
            key_parts.values().all(|s| s.len() == 1),
            "{codec}: {key_parts:?}"
        );
    }
}

#[test]
fn list_offsets_by_timestamp() {
    let broker = TestBroker::start();
    let addr = broker.kafka_addr();
    create_topic(&addr, "times", 1);
    let p = producer(&addr, &[]);
    let records: Vec<TestRecord> = (0..100)
        .map(|i| TestRecord {
            timestamp_ms: Some(base_ms() + 10 * i as i64),
            ..rec(i)
        })
        .collect();
    for chunk in records.chunks(10) {
        produce(&p, "times", Some(0), chunk);
    }
    let c = consumer(&addr, None, &[]);
    let b = base_ms();
    for (ts, want) in [
        (b, 0),
        (b + 5, 1),
        (b + 500, 50),
        (b + 990, 99),
        (b + 1_000_000, -1),
    ] {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("times", 0, Offset::Offset(ts))
            .unwrap();
        let found = c
            .offsets_for_times(tpl, KAFKA_TIMEOUT)
            .expect("offsets_for_times");
        let offset = found.elements()[0].offset();
        let want = if want < 0 {
            Offset::End
        } else {
            Offset::Offset(want)
        };
        assert_eq!(offset, want, "timestamp {ts}");
    }
    let (low, high) = c.fetch_watermarks("times", 0, KAFKA_TIMEOUT).unwrap();
    assert_eq!((low, high), (0, 100));
}

/// Members of `group` reading `topic` until `total` distinct records have been
/// seen by all of them; returns records per member.
fn group_members(
    addr: &str,
    group: &str,
    n: usize,
    protocol: &[(&str, &str)],
) -> Vec<rdkafka::consumer::BaseConsumer> {
    (0..n)
        .map(|_| {
            let c = consumer(addr, Some(group), protocol);
            c.subscribe(&["grp"]).unwrap();
            c
        })
        .collect()
}

fn run_group_rebalance(protocol: &[(&str, &str)], group: &str) {
    let broker = TestBroker::start();
    let addr = broker.kafka_addr();
    create_topic(&addr, "grp", 6);
    let p = producer(&addr, &[]);
    let first: Vec<TestRecord> = (0..600).map(rec).collect();
    produce(&p, "grp", None, &first);
    let mut members = group_members(&addr, group, 3, protocol);
    // Until every partition is owned and the first 600 are read.
    let deadline = Instant::now() + KAFKA_TIMEOUT * 2;
    let mut seen = BTreeSet::new();
    while seen.len() < first.len() {
        assert!(
            Instant::now() < deadline,
            "group read {} of {}",
            seen.len(),
            first.len()
        );
        for m in &members {
            if let Some(Ok(msg)) = m.poll(Duration::from_millis(50)) {
                let r = read_record(&msg);
                seen.insert((r.partition, r.offset));
            }
        }
    }
    let assigned: Vec<usize> = members
        .iter()
        .map(|m| m.assignment().unwrap().count())
        .collect();
    assert_eq!(assigned.iter().sum::<usize>(), 6, "{assigned:?}");
    for m in &members {
        m.commit_consumer_state(CommitMode::Sync).unwrap();
    }
    // One member leaves; the others take over its partitions and read new records.
    let gone = members.pop().unwrap();
    drop(gone);
    let second: Vec<TestRecord> = (600..1200).map(rec).collect();
    produce(&p, "grp", None, &second);
    let deadline = Instant::now() + KAFKA_TIMEOUT * 2;
    while seen.len() < first.len() + second.len() {
        assert!(
            Instant::now() < deadline,
            "after the leave the group read {} of {}",
            seen.len(),
            1200
        );
        for m in &members {
            if let Some(Ok(msg)) = m.poll(Duration::from_millis(50)) {
                let r = read_record(&msg);
                seen.insert((r.partition, r.offset));
            }
        }
    }
    let assigned: usize = members
        .iter()
        .map(|m| m.assignment().unwrap().count())
        .sum();
    assert_eq!(assigned, 6);
    // The group is described through the native protocol too.
    for m in &members {
        m.commit_consumer_state(CommitMode::Sync).unwrap();
    }
    let out = broker.cli(&["group", "describe", group], None);
    out.assert_success();
    // The committed offsets, read through the native protocol, cover all 1200 records:
    // TOPIC PARTITION COMMITTED END LAG rows.
    let committed: i64 = out
        .stdout
        .lines()
        .filter(|l| l.split_whitespace().next() == Some("grp"))
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<i64>().ok())
        .sum();
    assert_eq!(committed, 1200, "{}", out.stdout);
}

#[test]
fn classic_group_of_three_rebalances_when_a_member_leaves() {
    run_group_rebalance(
        &[("partition.assignment.strategy", "cooperative-sticky")],
        "classic-group",
    );
}

#[test]
fn kip848_group_of_three_rebalances_when_a_member_leaves() {
    run_group_rebalance(&[("group.protocol", "consumer")], "kip848-group");
}

#[test]
fn committed_offsets_survive_a_broker_restart() {
    let mut broker = TestBroker::start();
    let addr = broker.kafka_addr();
    create_topic(&addr, "resume", 2);
    let p = producer(&addr, &[]);
    produce(&p, "resume", None, &(0..200).map(rec).collect::<Vec<_>>());
    drop(p);
    let c = consumer(&addr, Some("resumers"), &[]);
    c.subscribe(&["resume"]).unwrap();
    let got = poll_records(&c, 120);
    // Commit exactly what was read.
    let mut tpl = TopicPartitionList::new();
    for (part, recs) in by_partition(&got) {
        let next = recs.last().unwrap().offset + 1;
        tpl.add_partition_offset("resume", part, Offset::Offset(next))
            .unwrap();
    }
    c.commit(&tpl, CommitMode::Sync).unwrap();
    drop(c);
    // Committed means durable: a SIGKILL right after the commit keeps it.
    broker.kill();
    broker.restart();
    let c = consumer(&addr, Some("resumers"), &[]);
    c.subscribe(&["resume"]).unwrap();
    let rest = poll_records(&c, 200 - 120);
    let mut all: BTreeSet<(i32, i64)> = got.iter().map(|r| (r.partition, r.offset)).collect();
    for r in &rest {
        assert!(
            all.insert((r.partition, r.offset)),
            "record {}/{} read twice",
            r.partition,
            r.offset
        );
    }
    assert_eq!(all.len(), 200);
}

#[test]
fn records_cross_between_kafka_and_native_protocols() {
    let broker = TestBroker::start();
    let addr = broker.kafka_addr();
    create_topic(&addr, "cross", 1);
    // Kafka producer (compressed) -> native consumer.
    let p = producer(&addr, &[("compression.type", "zstd")]);
    let records: Vec<TestRecord> = (0..50).map(rec).collect();
    produce(&p, "cross", Some(0), &records);
    let mut native = NativeConsumer::connect(ConsumerConfig {
        brokers: broker.brokers(),
        ..ConsumerConfig::default()
    })
    .unwrap();
    native.assign(&[("cross", 0)]);
    native.seek("cross", 0, 0).unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + KAFKA_TIMEOUT;
    while seen.len() < records.len() {
        assert!(
            Instant::now() < deadline,
            "native consumer read {} of 50",
            seen.len()
        );
        let batch = native.poll(Duration::from_millis(200)).unwrap();
        for r in batch.iter() {
            seen.push((
                r.offset(),
                r.key().map(<[u8]>::to_vec),
                r.value().map(<[u8]>::to_vec),
                r.timestamp_ms(),
            ));
        }
    }
    for (i, (offset, key, value, ts)) in seen.iter().enumerate() {
        assert_eq!(*offset, i as i64);
        assert_eq!(key, &records[i].key);
        assert_eq!(value, &records[i].value);
        assert_eq!(Some(*ts), records[i].timestamp_ms);
    }
    // Native producer -> Kafka consumer.
    let np = NativeProducer::connect(ProducerConfig {
        brokers: broker.brokers(),
        ..ProducerConfig::default()
    })
    .unwrap();
    for i in 0..30 {
        let record = ProducerRecord::new("cross", format!("native-value-{i}"))
            .key(format!("native-key-{i}"))
            .partition(0)
            .header("nh", b"v".to_vec())
            .timestamp_ms(base_ms() + 5_000 + i);
        np.send_blocking(record).unwrap();
    }
    let c = consumer(&addr, None, &[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("cross", 0, Offset::Offset(50))
        .unwrap();
    c.assign(&tpl).unwrap();
    let got = poll_records(&c, 30);
    for (i, g) in got.iter().enumerate() {
        assert_eq!(g.offset, 50 + i as i64);
        assert_eq!(
            g.record.key.as_deref(),
            Some(format!("native-key-{i}").as_bytes())
        );
        assert_eq!(
            g.record.value.as_deref(),
            Some(format!("native-value-{i}").as_bytes())
        );
        assert_eq!(
            g.record.headers,
            vec![("nh".to_owned(), Some(b"v".to_vec()))]
        );
        assert_eq!(g.record.timestamp_ms, Some(base_ms() + 5_000 + i as i64));
    }
    // Offsets committed through the native protocol start a Kafka group's consumer.
    broker
        .cli(
            &[
                "group",
                "reset-offsets",
                "xg",
                "--topic",
                "cross",
                "--to",
                "70",
            ],
            None,
        )
        .assert_success();
    let c = consumer(&addr, Some("xg"), &[]);
    c.subscribe(&["cross"]).unwrap();
    let got = poll_records(&c, 10);
    let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (70..80).collect::<Vec<_>>());
}

#[test]
fn log_append_time_topics_stamp_the_broker_time() {
    let broker = TestBroker::start();
    let addr = broker.kafka_addr();
    let admin = admin(&addr);
    let topic = rdkafka::admin::NewTopic::new("lat", 1, rdkafka::admin::TopicReplication::Fixed(1))
        .set("message.timestamp.type", "LogAppendTime");
    let r = block_on(admin.create_topics([&topic], &AdminOptions::new())).unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    let before_ms = base_ms() + 3_600_000 - 1_000;
    for codec in ["none", "lz4"] {
        let p = producer(&addr, &[("compression.type", codec)]);
        // Create times far in the past: the broker's clock must win.
        let records: Vec<TestRecord> = (0..20)
            .map(|i| TestRecord {
                timestamp_ms: Some(1_000 + i as i64),
                ..rec(i)
            })
            .collect();
        produce(&p, "lat", Some(0), &records);
    }
    // Native batches on the same topic are served with the append time too.
    let np = NativeProducer::connect(ProducerConfig {
        brokers: broker.brokers(),
        ..ProducerConfig::default()
    })
    .unwrap();
    np.send_blocking(
        ProducerRecord::new("lat", "native")
            .partition(0)
            .timestamp_ms(5),
    )
    .unwrap();
    let c = consumer(&addr, None, &[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("lat", 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let deadline = Instant::now() + KAFKA_TIMEOUT;
    let mut read = 0;
    while read < 41 {
        assert!(Instant::now() < deadline, "read {read} of 41");
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            match rdkafka::message::Message::timestamp(&m) {
                rdkafka::Timestamp::LogAppendTime(ms) => {
                    assert!(ms >= before_ms, "append time {ms} is the broker's clock")
                }
                other => panic!(
                    "offset {}: {other:?}, not LogAppendTime",
                    rdkafka::message::Message::offset(&m)
                ),
            }
            read += 1;
        }
    }
}
