//! DeleteRecords in a cluster: only the partition's leader takes it (a follower
//! answers NOT_LEADER_OR_FOLLOWER), and the followers move their log start to the
//! leader's, so the deleted records stay deleted when another replica leads.

use std::time::{Duration, Instant};

use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DeleteRecordsRequest, DeleteRecordsResponse, FetchRequest, FetchResponse,
    ListOffsetsRequest, ListOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strata_tests::cluster::TestCluster;
use strata_tests::cluster_kafka::{create_replicated, leader_of};
use strata_tests::kafka::consumer;
use strata_tests::kafka_wire::KafkaWire;

const TOPIC: &str = "pruned";
const RECORDS: usize = 100;
const DELETE_BEFORE: i64 = 50;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const OFFSET_OUT_OF_RANGE: i16 = 1;
/// ListOffsets' "earliest" timestamp.
const EARLIEST: i64 = -2;

fn name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

/// (error code, low watermark) of DeleteRecords before `offset` sent to `addr`.
fn delete_before(addr: &str, offset: i64) -> (i16, i64) {
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(name())
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(offset)])]);
    let resp: DeleteRecordsResponse = KafkaWire::connect(addr).call(ApiKey::DeleteRecords, 2, &req);
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.low_watermark)
}

/// (error code, offset) of ListOffsets earliest at `addr`.
fn earliest_at(addr: &str) -> (i16, i64) {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name())
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_current_leader_epoch(-1)
                .with_timestamp(EARLIEST)])]);
    let resp: ListOffsetsResponse = KafkaWire::connect(addr).call(ApiKey::ListOffsets, 5, &req);
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.offset)
}

/// The error code of a Fetch at `offset` from `addr`.
fn fetch_error_at(addr: &str, offset: i64) -> i16 {
    let mut req = FetchRequest::default();
    req.replica_id = BrokerId(-1);
    req.max_wait_ms = 0;
    req.min_bytes = 0;
    req.max_bytes = 1 << 20;
    req.topics = vec![FetchTopic::default()
        .with_topic(name())
        .with_partitions(vec![FetchPartition::default()
            .with_partition(0)
            .with_fetch_offset(offset)
            .with_partition_max_bytes(1 << 16)])];
    let resp: FetchResponse = KafkaWire::connect(addr).call(ApiKey::Fetch, 11, &req);
    resp.responses[0].partitions[0].error_code
}

#[test]
fn deleted_records_stay_deleted_when_another_replica_leads() {
    let mut cluster = TestCluster::start(3, 1);
    let bootstrap = cluster.kafka_bootstrap();
    create_replicated(&bootstrap, TOPIC, 1, 3);
    let probe = consumer(&bootstrap, None, &[]);
    let leader = leader_of(&probe, TOPIC);
    let leader_addr = cluster.kafka_addr(leader as usize - 1);

    let mut wire = KafkaWire::connect(&leader_addr);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut acked = 0;
    while acked < RECORDS {
        let (r, _) = wire.produce_one(TOPIC, 0, format!("r{acked}").as_bytes(), -1, 5_000, 9);
        if r.error_code == 0 {
            acked += 1;
        } else {
            assert!(
                Instant::now() < deadline,
                "produce refused: {}",
                r.error_code
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    let follower = (1..=3).find(|b| *b != leader).expect("a follower");
    let follower_addr = cluster.kafka_addr(follower as usize - 1);
    assert_eq!(
        delete_before(&follower_addr, DELETE_BEFORE).0,
        NOT_LEADER_OR_FOLLOWER,
        "a follower must not delete on its own"
    );
    assert_eq!(
        delete_before(&leader_addr, DELETE_BEFORE),
        (0, DELETE_BEFORE)
    );
    assert_eq!(earliest_at(&leader_addr), (0, DELETE_BEFORE));

    // The followers hear the leader's log start with its next heartbeat.
    std::thread::sleep(Duration::from_secs(2));
    cluster.kill(leader as usize - 1);
    let deadline = Instant::now() + Duration::from_secs(60);
    let new_leader = loop {
        let l = leader_of(&probe, TOPIC);
        if l != leader {
            break l;
        }
        assert!(Instant::now() < deadline, "no new leader after the kill");
        std::thread::sleep(Duration::from_millis(200));
    };
    let new_addr = cluster.kafka_addr(new_leader as usize - 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    let earliest = loop {
        let (code, offset) = earliest_at(&new_addr);
        if code == 0 || Instant::now() > deadline {
            break (code, offset);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        earliest,
        (0, DELETE_BEFORE),
        "the new leader {new_leader} brought deleted records back"
    );
    assert_eq!(fetch_error_at(&new_addr, 10), OFFSET_OUT_OF_RANGE);
    assert_eq!(fetch_error_at(&new_addr, DELETE_BEFORE), 0);
}
