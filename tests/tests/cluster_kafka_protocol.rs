//! The cluster's Kafka protocol details, against 3 real brokers on 127.0.0.1 (racks
//! `rack-1`..`rack-3`), with hand-made requests where a client library would hide
//! the answer:
//! - KIP-951: NOT_LEADER_OR_FOLLOWER answers to Produce and Fetch name the current
//!   leader, its epoch and its endpoint;
//! - leader epochs: Fetch, ListOffsets and OffsetForLeaderEpoch fence an older
//!   `current_leader_epoch` (FENCED_LEADER_EPOCH) and a newer one
//!   (UNKNOWN_LEADER_EPOCH); Metadata's epoch grows when the leader changes;
//! - KIP-392: the leader sends a consumer in a follower's rack to that follower,
//!   which serves the same records up to the high watermark; librdkafka with
//!   `client.rack` really fetches from it;
//! - the admin surface: DescribeQuorum (from any broker), DescribeTopicPartitions
//!   (paged), DescribeLogDirs and AlterReplicaLogDirs.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::describe_quorum_request::{
    PartitionData as QuorumPartition, TopicData as QuorumTopic,
};
use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    alter_replica_log_dirs_request, AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse,
    ApiKey, BrokerId, DescribeLogDirsRequest, DescribeLogDirsResponse, DescribeQuorumRequest,
    DescribeQuorumResponse, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse,
    FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest,
    MetadataResponse, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{ClientContext, Offset, Statistics, TopicPartitionList};
use strata_tests::cluster::TestCluster;
use strata_tests::cluster_kafka::create_replicated;
use strata_tests::kafka::{config, produce, producer, read_record, TestRecord};
use strata_tests::kafka_wire::KafkaWire;

const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const LOG_DIR_NOT_FOUND: i16 = 57;
/// Bound on waiting for leaders, catch-ups and consumers.
const WAIT: Duration = Duration::from_secs(60);

fn racked_cluster() -> TestCluster {
    TestCluster::start_with(3, 1, |i| vec!["--rack".to_owned(), rack(i as i32 + 1)])
}

fn rack(broker: i32) -> String {
    format!("rack-{broker}")
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

/// `topic` in a Metadata v12 answer from `addr`.
fn metadata(addr: &str, topic: &str) -> MetadataResponseTopic {
    let mut req = MetadataRequest::default();
    req.topics = Some(vec![
        MetadataRequestTopic::default().with_name(Some(name(topic)))
    ]);
    req.allow_auto_topic_creation = false;
    let mut resp: MetadataResponse = KafkaWire::connect(addr).call(ApiKey::Metadata, 12, &req);
    resp.topics.remove(0)
}

/// `topic`'s partition-0 metadata once every partition has a leader (bounded).
fn led(c: &TestCluster, topic: &str) -> MetadataResponseTopic {
    let deadline = Instant::now() + WAIT;
    loop {
        let t = metadata(&c.kafka_addr(0), topic);
        if !t.partitions.is_empty() && t.partitions.iter().all(|p| p.leader_id.0 > 0) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "{topic} has no leaders\n{}",
            c.stderr_tails()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The Kafka port of broker `id`.
fn kafka_port(c: &TestCluster, id: i32) -> i32 {
    let addr = c.kafka_addr(id as usize - 1);
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port")
}

/// A consumer Fetch of `topic`-0 from `offset` at `version` (by id from v13).
fn fetch(
    addr: &str,
    version: i16,
    topic: &MetadataResponseTopic,
    offset: i64,
    current_leader_epoch: i32,
    rack_id: &str,
) -> FetchResponse {
    let mut req = FetchRequest::default();
    req.max_wait_ms = 0;
    req.min_bytes = 0;
    req.max_bytes = 1 << 20;
    if version >= 11 {
        req.rack_id = StrBytes::from_string(rack_id.to_owned());
    }
    let mut t = FetchTopic::default();
    if version >= 13 {
        t.topic_id = topic.topic_id;
    } else {
        t.topic = topic.name.clone().expect("a topic name");
    }
    let mut p = FetchPartition::default()
        .with_partition(0)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(1 << 20);
    if version >= 9 {
        p.current_leader_epoch = current_leader_epoch;
    }
    t.partitions = vec![p];
    req.topics = vec![t];
    KafkaWire::connect(addr).call(ApiKey::Fetch, version, &req)
}

fn list_offsets_code(addr: &str, topic: &str, current_leader_epoch: i32) -> (i16, i32) {
    let mut req = ListOffsetsRequest::default();
    req.replica_id = BrokerId(-1);
    req.topics = vec![ListOffsetsTopic::default()
        .with_name(name(topic))
        .with_partitions(vec![ListOffsetsPartition::default()
            .with_partition_index(0)
            .with_current_leader_epoch(current_leader_epoch)
            .with_timestamp(-1)])];
    let resp: ListOffsetsResponse = KafkaWire::connect(addr).call(ApiKey::ListOffsets, 6, &req);
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.leader_epoch)
}

fn offset_for_epoch_code(addr: &str, topic: &str, current_leader_epoch: i32) -> i16 {
    let mut req = OffsetForLeaderEpochRequest::default();
    req.replica_id = BrokerId(-1);
    req.topics = vec![OffsetForLeaderTopic::default()
        .with_topic(name(topic))
        .with_partitions(vec![OffsetForLeaderPartition::default()
            .with_partition(0)
            .with_current_leader_epoch(current_leader_epoch)
            .with_leader_epoch(current_leader_epoch.max(0))])];
    let resp: OffsetForLeaderEpochResponse =
        KafkaWire::connect(addr).call(ApiKey::OffsetForLeaderEpoch, 4, &req);
    resp.topics[0].partitions[0].error_code
}

#[test]
fn not_leader_answers_name_the_leader_and_stale_epochs_are_fenced() {
    let mut c = racked_cluster();
    let bootstrap = c.kafka_bootstrap();
    create_replicated(&bootstrap, "narrow", 1, 2);
    create_replicated(&bootstrap, "wide", 1, 3);

    // KIP-951 at the broker holding no replica of `narrow`.
    let narrow = led(&c, "narrow");
    let p = &narrow.partitions[0];
    let (leader, epoch) = (p.leader_id.0, p.leader_epoch);
    assert!(
        epoch >= 1,
        "a Raft term is at least 1 once elected: {epoch}"
    );
    let replicas: Vec<i32> = p.replica_nodes.iter().map(|b| b.0).collect();
    let outsider = (1..=3)
        .find(|b| !replicas.contains(b))
        .expect("an outsider");
    let out_addr = c.kafka_addr(outsider as usize - 1);
    let (r, endpoints) =
        KafkaWire::connect(&out_addr).produce_one("narrow", 0, b"x", -1, 5_000, 11);
    assert_eq!(r.error_code, NOT_LEADER_OR_FOLLOWER);
    assert_eq!(
        (r.current_leader.leader_id.0, r.current_leader.leader_epoch),
        (leader, epoch),
        "Produce names the current leader"
    );
    let e = endpoints
        .iter()
        .find(|e| e.node_id.0 == leader)
        .expect("the leader's endpoint");
    assert_eq!(e.port, kafka_port(&c, leader));
    assert_eq!(e.rack.as_ref().map(|r| r.to_string()), Some(rack(leader)));
    let f = fetch(&out_addr, 16, &narrow, 0, -1, "");
    let fp = &f.responses[0].partitions[0];
    assert_eq!(fp.error_code, NOT_LEADER_OR_FOLLOWER);
    assert_eq!(
        (
            fp.current_leader.leader_id.0,
            fp.current_leader.leader_epoch
        ),
        (leader, epoch),
        "Fetch names the current leader"
    );
    assert!(f
        .node_endpoints
        .iter()
        .any(|e| e.node_id.0 == leader && e.port == kafka_port(&c, leader)));

    // Epochs at the leader of `wide`.
    let wide = led(&c, "wide");
    let (leader, epoch) = (
        wide.partitions[0].leader_id.0,
        wide.partitions[0].leader_epoch,
    );
    let at = c.kafka_addr(leader as usize - 1);
    let code = |e: i32| fetch(&at, 12, &wide, 0, e, "").responses[0].partitions[0].error_code;
    assert_eq!(code(epoch), 0);
    assert_eq!(code(-1), 0, "-1 asks for no check");
    assert_eq!(code(epoch - 1), FENCED_LEADER_EPOCH);
    assert_eq!(code(epoch + 1), UNKNOWN_LEADER_EPOCH);
    assert_eq!(list_offsets_code(&at, "wide", epoch), (0, epoch));
    assert_eq!(
        list_offsets_code(&at, "wide", epoch - 1).0,
        FENCED_LEADER_EPOCH
    );
    assert_eq!(
        list_offsets_code(&at, "wide", epoch + 1).0,
        UNKNOWN_LEADER_EPOCH
    );
    assert_eq!(offset_for_epoch_code(&at, "wide", epoch), 0);
    assert_eq!(
        offset_for_epoch_code(&at, "wide", epoch - 1),
        FENCED_LEADER_EPOCH
    );
    assert_eq!(
        offset_for_epoch_code(&at, "wide", epoch + 1),
        UNKNOWN_LEADER_EPOCH
    );

    // A new leader has a newer epoch, and the old one is fenced there.
    c.kill(leader as usize - 1);
    let other = (1..=3).find(|b| *b != leader).expect("another broker");
    let deadline = Instant::now() + WAIT;
    let (new, new_epoch) = loop {
        let t = metadata(&c.kafka_addr(other as usize - 1), "wide");
        let p = &t.partitions[0];
        if p.leader_id.0 > 0 && p.leader_id.0 != leader {
            break (p.leader_id.0, p.leader_epoch);
        }
        assert!(
            Instant::now() < deadline,
            "no new leader\n{}",
            c.stderr_tails()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(new_epoch > epoch, "epoch {new_epoch} after {epoch}");
    let at = c.kafka_addr(new as usize - 1);
    // The leader's replica may learn its term a moment before Metadata shows it.
    let deadline = Instant::now() + WAIT;
    loop {
        let code = fetch(&at, 12, &wide, 0, new_epoch, "").responses[0].partitions[0].error_code;
        if code == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "fetch at the new epoch: {code}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let old = fetch(&at, 12, &wide, 0, epoch, "").responses[0].partitions[0].error_code;
    assert_eq!(old, FENCED_LEADER_EPOCH, "the old epoch at the new leader");
}

/// Every broker id a librdkafka consumer's statistics showed `topic`-0 fetched from.
#[derive(Clone, Default)]
struct FetchedFrom(Arc<Mutex<BTreeSet<i32>>>);

impl ClientContext for FetchedFrom {
    fn stats(&self, stats: Statistics) {
        for t in stats.topics.values() {
            for p in t.partitions.values().filter(|p| p.partition == 0) {
                if p.broker >= 0 {
                    self.0.lock().expect("lock").insert(p.broker);
                }
            }
        }
    }
}

impl ConsumerContext for FetchedFrom {}

#[test]
fn a_consumer_in_a_followers_rack_reads_from_that_follower() {
    let c = racked_cluster();
    let bootstrap = c.kafka_bootstrap();
    let topic = "racked";
    create_replicated(&bootstrap, topic, 1, 3);
    let records: Vec<TestRecord> = (0..200)
        .map(|i| TestRecord {
            key: Some(format!("k{i}").into_bytes()),
            value: Some(format!("value-{i:04}").into_bytes()),
            headers: Vec::new(),
            timestamp_ms: None,
        })
        .collect();
    produce(
        &producer(&bootstrap, &[("enable.idempotence", "true")]),
        topic,
        Some(0),
        &records,
    );
    let meta = led(&c, topic);
    let p = &meta.partitions[0];
    let (leader, epoch) = (p.leader_id.0, p.leader_epoch);
    let follower = p
        .replica_nodes
        .iter()
        .map(|b| b.0)
        .find(|b| *b != leader)
        .expect("a follower");
    let leader_addr = c.kafka_addr(leader as usize - 1);
    let follower_addr = c.kafka_addr(follower as usize - 1);

    // The leader sends the follower's rack to the follower, at once and without records.
    let f = fetch(&leader_addr, 12, &meta, 0, epoch, &rack(follower));
    let fp = &f.responses[0].partitions[0];
    assert_eq!(fp.error_code, 0);
    assert_eq!(fp.preferred_read_replica.0, follower);
    assert!(fp.records.as_ref().is_none_or(|r| r.is_empty()));
    // Its own rack, or none, it serves itself.
    for r in [rack(leader), String::new()] {
        let f = fetch(&leader_addr, 12, &meta, 0, epoch, &r);
        let fp = &f.responses[0].partitions[0];
        assert_eq!(fp.preferred_read_replica.0, -1, "rack {r:?}");
        assert!(fp.records.as_ref().is_some_and(|r| !r.is_empty()));
    }
    // The follower serves consumers with client metadata (v11+), up to the high
    // watermark the leader told it; older fetches go to the leader, as in Kafka.
    let deadline = Instant::now() + WAIT;
    loop {
        let f = fetch(&follower_addr, 12, &meta, 0, epoch, &rack(follower));
        let fp = &f.responses[0].partitions[0];
        assert_eq!(fp.error_code, 0, "a follower fetch");
        if fp.high_watermark >= 200 {
            assert!(fp.records.as_ref().is_some_and(|r| !r.is_empty()));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the follower's high watermark stays at {}",
            fp.high_watermark
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let old = fetch(&follower_addr, 10, &meta, 0, -1, "");
    assert_eq!(
        old.responses[0].partitions[0].error_code,
        NOT_LEADER_OR_FOLLOWER
    );

    // librdkafka in the follower's rack reads everything, from the follower.
    let context = FetchedFrom::default();
    let consumer: BaseConsumer<FetchedFrom> = config(&bootstrap)
        .set("group.id", "racked-reader")
        .set("client.rack", rack(follower))
        .set("enable.auto.commit", "false")
        .set("statistics.interval.ms", "100")
        .create_with_context(context.clone())
        .expect("create consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("assign offset");
    consumer.assign(&tpl).expect("assign");
    let mut values = Vec::new();
    let deadline = Instant::now() + WAIT;
    while values.len() < records.len() && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let r = read_record(&m.expect("a record"));
            values.push(r.record.value.unwrap_or_default());
        }
    }
    let want: Vec<Vec<u8>> = records.iter().map(|r| r.value.clone().unwrap()).collect();
    assert_eq!(
        values, want,
        "the follower serves the same records, in order"
    );
    // Let the statistics catch up with the last fetches.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !context.0.lock().expect("lock").contains(&follower) && Instant::now() < deadline {
        let _ = consumer.poll(Duration::from_millis(100));
    }
    let from = context.0.lock().expect("lock").clone();
    assert!(
        from.contains(&follower),
        "librdkafka fetched from {from:?}, not from follower {follower} in its rack"
    );
}

fn quorum(addr: &str, version: i16) -> DescribeQuorumResponse {
    let req = DescribeQuorumRequest::default().with_topics(vec![QuorumTopic::default()
        .with_topic_name(name("__cluster_metadata"))
        .with_partitions(vec![QuorumPartition::default().with_partition_index(0)])]);
    KafkaWire::connect(addr).call(ApiKey::DescribeQuorum, version, &req)
}

fn describe_partitions(
    addr: &str,
    topics: &[&str],
    limit: i32,
    cursor: Option<Cursor>,
) -> DescribeTopicPartitionsResponse {
    let req = DescribeTopicPartitionsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|t| TopicRequest::default().with_name(name(t)))
                .collect(),
        )
        .with_response_partition_limit(limit)
        .with_cursor(cursor);
    KafkaWire::connect(addr).call(ApiKey::DescribeTopicPartitions, 0, &req)
}

#[test]
fn the_admin_surface_describes_the_quorum_partitions_and_log_dirs() {
    let c = racked_cluster();
    let bootstrap = c.kafka_bootstrap();
    let topic = "described";
    create_replicated(&bootstrap, topic, 3, 2);
    let records: Vec<TestRecord> = (0..50)
        .map(|i| TestRecord {
            key: None,
            value: Some(format!("v{i}").into_bytes()),
            headers: Vec::new(),
            timestamp_ms: None,
        })
        .collect();
    produce(&producer(&bootstrap, &[]), topic, Some(0), &records);

    // DescribeQuorum: every broker answers (the followers forward to the leader).
    let deadline = Instant::now() + WAIT;
    let answers = loop {
        let answers: Vec<DescribeQuorumResponse> =
            (0..3).map(|i| quorum(&c.kafka_addr(i), 2)).collect();
        let complete = answers.iter().all(|a| {
            let p = &a.topics[0].partitions[0];
            a.error_code == 0
                && p.error_code == 0
                && p.current_voters.iter().all(|v| v.log_end_offset > 0)
        });
        if complete {
            break answers;
        }
        assert!(
            Instant::now() < deadline,
            "DescribeQuorum answers stay incomplete: {answers:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let leaders: BTreeSet<i32> = answers
        .iter()
        .map(|a| a.topics[0].partitions[0].leader_id.0)
        .collect();
    assert_eq!(leaders.len(), 1, "one quorum leader: {leaders:?}");
    let p = &answers[0].topics[0].partitions[0];
    assert!(p.leader_epoch >= 1);
    assert!(p.high_watermark > 0);
    let voters: BTreeSet<i32> = p.current_voters.iter().map(|v| v.replica_id.0).collect();
    assert_eq!(voters, BTreeSet::from([1, 2, 3]));
    let me = p
        .current_voters
        .iter()
        .find(|v| v.replica_id == p.leader_id)
        .expect("the leader votes");
    assert!(me.log_end_offset >= p.high_watermark);
    assert!(p.current_voters.iter().all(|v| v.last_fetch_timestamp > 0));
    assert_eq!(answers[0].nodes.len(), 3);
    assert_eq!(
        quorum(&c.kafka_addr(1), 0).topics[0].partitions[0].error_code,
        0
    );

    // DescribeTopicPartitions agrees with Metadata, page by page.
    let meta = led(&c, topic);
    let all = describe_partitions(&c.kafka_addr(2), &[topic, "nope"], 2000, None);
    assert!(all.next_cursor.is_none());
    let t = all
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        .expect("the topic");
    assert_eq!(t.topic_id, meta.topic_id);
    assert_eq!(t.partitions.len(), 3);
    for (d, m) in t.partitions.iter().zip(&meta.partitions) {
        assert_eq!(
            (d.leader_id, d.leader_epoch, &d.replica_nodes),
            (m.leader_id, m.leader_epoch, &m.replica_nodes)
        );
    }
    let nope = all
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == "nope"))
        .expect("the unknown topic");
    assert_eq!(nope.error_code, UNKNOWN_TOPIC_OR_PARTITION);
    let mut cursor = None;
    let mut paged = Vec::new();
    for _ in 0..5 {
        let page = describe_partitions(&c.kafka_addr(0), &[topic], 1, cursor.take());
        for t in &page.topics {
            paged.extend(t.partitions.iter().map(|p| p.partition_index));
        }
        match page.next_cursor {
            Some(next) => {
                cursor = Some(
                    Cursor::default()
                        .with_topic_name(next.topic_name)
                        .with_partition_index(next.partition_index),
                )
            }
            None => break,
        }
    }
    assert_eq!(paged, [0, 1, 2], "three pages of one partition");

    // DescribeLogDirs: each broker lists its own replicas in its data dir.
    for i in 0..3 {
        let id = i as i32 + 1;
        let hosted: Vec<i32> = meta
            .partitions
            .iter()
            .filter(|p| p.replica_nodes.iter().any(|b| b.0 == id))
            .map(|p| p.partition_index)
            .collect();
        let deadline = Instant::now() + WAIT;
        loop {
            let req = DescribeLogDirsRequest::default().with_topics(Some(vec![
                DescribableLogDirTopic::default()
                    .with_topic(name(topic))
                    .with_partitions(vec![0, 1, 2]),
            ]));
            let resp: DescribeLogDirsResponse =
                KafkaWire::connect(&c.kafka_addr(i)).call(ApiKey::DescribeLogDirs, 4, &req);
            assert_eq!(resp.results.len(), 1, "one data dir");
            let dir = &resp.results[0];
            assert_eq!(dir.error_code, 0);
            let data_dir = std::path::absolute(c.data_dir(i)).expect("absolute");
            assert_eq!(dir.log_dir.as_str(), data_dir.display().to_string());
            assert!(dir.total_bytes > 0 && dir.usable_bytes > 0);
            let listed: Vec<i32> = dir
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.partition_index))
                .collect();
            assert_eq!(listed, hosted, "broker {id} lists its replicas");
            let p0 = dir
                .topics
                .iter()
                .flat_map(|t| &t.partitions)
                .find(|p| p.partition_index == 0);
            if p0.is_none_or(|p| p.partition_size > 0) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "broker {id}'s replica of {topic}-0 stays empty"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    // AlterReplicaLogDirs: one data dir, so a move to it is a no-op and any other
    // dir does not exist.
    let holder = meta.partitions[0].replica_nodes[0].0 as usize - 1;
    let alter = |path: String| {
        let req = AlterReplicaLogDirsRequest::default().with_dirs(vec![
            alter_replica_log_dirs_request::AlterReplicaLogDir::default()
                .with_path(StrBytes::from_string(path))
                .with_topics(vec![
                    alter_replica_log_dirs_request::AlterReplicaLogDirTopic::default()
                        .with_name(name(topic))
                        .with_partitions(vec![0]),
                ]),
        ]);
        let resp: AlterReplicaLogDirsResponse =
            KafkaWire::connect(&c.kafka_addr(holder)).call(ApiKey::AlterReplicaLogDirs, 2, &req);
        resp.results[0].partitions[0].error_code
    };
    let here = std::path::absolute(c.data_dir(holder)).expect("absolute");
    assert_eq!(alter(here.display().to_string()), 0);
    assert_eq!(alter("/no/such/strata/dir".to_owned()), LOG_DIR_NOT_FOUND);
}
