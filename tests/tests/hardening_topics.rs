//! Topics at scale and topic deletion, against real broker processes (issue 9):
//! - a topic deleted and created again under its name starts its groups from the
//!   beginning (the old committed offsets are gone), through the native protocol and
//!   through librdkafka, also after a broker restart;
//! - a topic of 2,000 partitions survives a graceful stop and restart with every
//!   partition present, marked clean and writable;
//! - a SIGKILL in the middle of creating such a topic leaves a consistent topic.

use std::time::{Duration, Instant};

use futures_lite::future::block_on;
use rdkafka::admin::AdminOptions;
use rdkafka::consumer::{CommitMode, Consumer as _};
use rdkafka::{Offset, TopicPartitionList};
use strata_client::{
    Admin, AdminConfig, AssignmentStrategy, Consumer, ConsumerConfig, OffsetReset, Producer,
    ProducerConfig, ProducerRecord,
};
use strata_engine::clean_marker::CLEAN_MARKER_NAME;
use strata_tests::broker::TestBroker;
use strata_tests::kafka;

/// Records in the topic before and after it is deleted and created again.
const RECORDS: usize = 5;
/// Offset the group committed in the old topic: a consumer that wrongly resumed
/// there would skip the new topic's first records.
const OLD_COMMITTED_OFFSET: i64 = 3;
/// Partitions of the big topic.
const BIG_PARTITIONS: u32 = 2_000;
/// Longest wait for a consumer to read what it expects.
const READ_WAIT: Duration = Duration::from_secs(30);
/// Time allowed for an admin request (creating 2,000 partitions on a loaded machine).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(120);
/// Configs of the big topics: the smallest segments, so that the disk space reserved
/// ahead of writes (up to a segment per written partition) stays small.
const BIG_CONFIGS: &[(&str, &str)] = &[("segment.bytes", "65536")];
/// Longest wait for the big topic to reach the metadata file before the SIGKILL.
const META_WAIT: Duration = Duration::from_secs(60);

fn admin(broker: &TestBroker) -> Admin {
    Admin::connect(AdminConfig {
        brokers: broker.brokers(),
        request_timeout: ADMIN_TIMEOUT,
    })
    .expect("admin connects")
}

fn producer(broker: &TestBroker) -> Producer {
    Producer::connect(ProducerConfig {
        brokers: broker.brokers(),
        ..ProducerConfig::default()
    })
    .expect("producer connects")
}

fn produce_native(broker: &TestBroker, topic: &str, tag: &str) {
    let p = producer(broker);
    for i in 0..RECORDS {
        p.send_blocking(ProducerRecord::new(topic, format!("{tag}-{i}")).partition(0))
            .expect("send");
    }
    p.close();
}

/// The offsets a native member of `group` reads from `topic` (one partition), until
/// it has `RECORDS` or `READ_WAIT` passed.
fn native_group_reads(broker: &TestBroker, group: &str, topic: &str) -> Vec<i64> {
    let mut c = Consumer::connect(ConsumerConfig {
        brokers: broker.brokers(),
        auto_offset_reset: OffsetReset::Earliest,
        enable_auto_commit: false,
        ..ConsumerConfig::default()
    })
    .expect("consumer connects");
    c.subscribe(group, &[topic], AssignmentStrategy::Range)
        .expect("subscribe");
    let mut offsets = Vec::new();
    let deadline = Instant::now() + READ_WAIT;
    while offsets.len() < RECORDS && Instant::now() < deadline {
        for r in c.poll(Duration::from_millis(200)).expect("poll").iter() {
            offsets.push(r.offset());
        }
    }
    let _ = c.close();
    offsets
}

/// The group's committed offset of `topic`/0, -1 when there is none.
fn committed(admin: &Admin, group: &str, topic: &str) -> i64 {
    admin
        .committed_offsets(group)
        .wait()
        .expect("committed offsets")
        .into_iter()
        .find(|c| c.topic == topic && c.partition == 0)
        .map_or(-1, |c| c.offset)
}

#[test]
fn a_recreated_topic_starts_native_groups_from_the_beginning() {
    let mut broker = TestBroker::start();
    let (topic, group) = ("reborn", "reborn-readers");
    let a = admin(&broker);
    a.create_topic(topic, 1, &[]).wait().expect("create");
    produce_native(&broker, topic, "old");
    a.commit_group_offsets(group, &[(topic, 0, OLD_COMMITTED_OFFSET)])
        .wait()
        .expect("commit");
    assert_eq!(committed(&a, group, topic), OLD_COMMITTED_OFFSET);

    a.delete_topic(topic).wait().expect("delete");
    a.create_topic(topic, 1, &[]).wait().expect("create again");
    produce_native(&broker, topic, "new");
    assert_eq!(
        committed(&a, group, topic),
        -1,
        "the deleted topic's committed offset outlived it"
    );
    let offsets = native_group_reads(&broker, group, topic);
    assert_eq!(
        offsets,
        (0..RECORDS as i64).collect::<Vec<_>>(),
        "a member of the group reads the new topic from its beginning"
    );

    // Durable: the offsets stay gone after a crash and a restart, and the group's
    // new commits (none here) are all there is.
    a.commit_group_offsets("other-group", &[(topic, 0, 1)])
        .wait()
        .expect("commit of another group");
    drop(a);
    broker.kill();
    broker.restart();
    let a = admin(&broker);
    assert_eq!(committed(&a, group, topic), -1, "{}", broker.stderr_tail());
    assert_eq!(committed(&a, "other-group", topic), 1, "newer commits stay");
    let offsets = native_group_reads(&broker, group, topic);
    assert_eq!(offsets, (0..RECORDS as i64).collect::<Vec<_>>());
}

#[test]
fn a_recreated_topic_starts_kafka_groups_from_the_beginning_also_after_a_restart() {
    let mut broker = TestBroker::start();
    let addr = broker.kafka_addr();
    let (topic, group) = ("kreborn", "kreborn-readers");
    kafka::create_topic(&addr, topic, 1);
    let records: Vec<kafka::TestRecord> = (0..RECORDS)
        .map(|i| kafka::TestRecord {
            key: None,
            value: Some(format!("old-{i}").into_bytes()),
            headers: Vec::new(),
            timestamp_ms: None,
        })
        .collect();
    let p = kafka::producer(&addr, &[]);
    kafka::produce(&p, topic, Some(0), &records);
    let c = kafka::consumer(&addr, Some(group), &[]);
    c.subscribe(&[topic]).expect("subscribe");
    let got = kafka::poll_records(&c, RECORDS);
    assert_eq!(got.len(), RECORDS);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(OLD_COMMITTED_OFFSET))
        .expect("tpl");
    c.commit(&tpl, CommitMode::Sync).expect("commit");
    drop(c);

    let admin = kafka::admin(&addr);
    for r in block_on(admin.delete_topics(
        &[topic],
        &AdminOptions::new().operation_timeout(Some(kafka::KAFKA_TIMEOUT)),
    ))
    .expect("delete_topics request")
    {
        r.unwrap_or_else(|(t, e)| panic!("delete topic {t}: {e}\n{}", broker.stderr_tail()));
    }
    drop(admin);
    kafka::create_topic(&addr, topic, 1);
    kafka::produce(&p, topic, Some(0), &records);
    drop(p);
    // The tombstones must hold across a restart on their own: the topic exists again,
    // so nothing at startup would remove the old offsets otherwise.
    broker.kill();
    broker.restart();

    let c = kafka::consumer(&addr, Some(group), &[]);
    c.subscribe(&[topic]).expect("subscribe");
    let got = kafka::poll_records(&c, RECORDS);
    let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
    assert_eq!(
        offsets,
        (0..RECORDS as i64).collect::<Vec<_>>(),
        "the group reads the new topic from its beginning\n{}",
        broker.stderr_tail()
    );
}

/// Sends one record to every partition of `topic` and checks each lands at `offset`.
fn write_every_partition(broker: &TestBroker, topic: &str, partitions: u32, offset: i64) {
    let p = producer(broker);
    let sends: Vec<_> = (0..partitions)
        .map(|i| p.send(ProducerRecord::new(topic, format!("r{i}")).partition(i)))
        .collect();
    for (i, s) in sends.into_iter().enumerate() {
        let meta = s.wait().unwrap_or_else(|e| {
            panic!(
                "partition {i} is not writable: {e}\n{}",
                broker.stderr_tail()
            )
        });
        assert_eq!(meta.partition, i as u32);
        assert_eq!(meta.offset, offset, "partition {i}");
    }
    p.close();
}

fn assert_partitions(broker: &TestBroker, topic: &str, partitions: u32) {
    let d = admin(broker)
        .describe_topic(topic)
        .wait()
        .unwrap_or_else(|e| panic!("describe {topic}: {e}\n{}", broker.stderr_tail()));
    assert_eq!(d.partitions.len() as u32, partitions);
}

#[test]
fn a_topic_of_2000_partitions_stops_and_restarts_whole() {
    let mut broker = TestBroker::start();
    let started = Instant::now();
    admin(&broker)
        .create_topic("big", BIG_PARTITIONS, BIG_CONFIGS)
        .wait()
        .expect("create");
    let create_took = started.elapsed();
    let stop_took = broker.stop_gracefully();
    let start_took = broker.restart();
    assert_partitions(&broker, "big", BIG_PARTITIONS);
    write_every_partition(&broker, "big", BIG_PARTITIONS, 0);
    let stop_written_took = broker.stop_gracefully();
    for p in 0..BIG_PARTITIONS {
        assert!(
            broker
                .partition_dir("big", p)
                .join(CLEAN_MARKER_NAME)
                .is_file(),
            "partition {p} has no clean marker after a graceful stop"
        );
    }
    broker.restart();
    write_every_partition(&broker, "big", BIG_PARTITIONS, 1);
    println!(
        "{BIG_PARTITIONS} partitions: create {} ms, stop {} ms, start {} ms, stop after writes {} ms",
        create_took.as_millis(),
        stop_took.as_millis(),
        start_took.as_millis(),
        stop_written_took.as_millis()
    );
}

#[test]
fn a_sigkill_during_a_big_create_leaves_a_consistent_topic() {
    let mut broker = TestBroker::start();
    let creating = std::thread::spawn({
        let brokers = broker.brokers();
        move || {
            let a = Admin::connect(AdminConfig {
                brokers,
                request_timeout: ADMIN_TIMEOUT,
            })
            .expect("admin connects");
            // The broker dies under it: the answer does not matter.
            let _ = a
                .create_topic("crashed", BIG_PARTITIONS, BIG_CONFIGS)
                .wait();
        }
    });
    // Killed once the topic is in the metadata file, while its partitions open.
    let topics_file = broker.data_dir().join("__meta").join("topics");
    let deadline = Instant::now() + META_WAIT;
    while !std::fs::read_to_string(&topics_file)
        .is_ok_and(|t| t.lines().any(|l| l.starts_with("topic crashed ")))
    {
        assert!(
            Instant::now() < deadline,
            "the topic never reached the metadata file"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    broker.kill();
    creating.join().expect("creating thread");
    broker.restart();
    assert_partitions(&broker, "crashed", BIG_PARTITIONS);
    write_every_partition(&broker, "crashed", BIG_PARTITIONS, 0);
    // And it stays consistent across a graceful restart.
    broker.stop_gracefully();
    broker.restart();
    write_every_partition(&broker, "crashed", BIG_PARTITIONS, 1);
}
