//! A follower whose log ends below its leader's log start: 3 brokers, a topic with
//! replication factor 3 and small segments; one follower is stopped while records are
//! produced and DeleteRecords moves the leader's log start past everything the
//! follower holds (the follower that stays up moves its own start to the leader's).
//! When it restarts it cannot be sent the deleted records: its log is
//! restarted empty at the leader's start and it catches up from there. Then the other
//! follower stops and the leader dies, so the restarted broker must lead: it has
//! every record acknowledged after the delete point, once, at its offset, in order,
//! and its log starts where the leader's did. And a reassignment's new replica joining
//! a partition whose log no longer starts at 0 starts its log at the leader's start.

use std::time::{Duration, Instant};

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::AdminOptions;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use strata_tests::cluster::TestCluster;
use strata_tests::cluster_kafka::{
    check_log, create_replicated_with, leader_of, read_all, send_acked,
};
use strata_tests::kafka::{admin, consumer, producer, KAFKA_TIMEOUT};
use strata_tests::kafka_wire::KafkaWire;

const TOPIC: &str = "log-start";

/// Creates the topic with `rf` replicas and 64 KiB segments.
fn create_topic(bootstrap: &str, rf: i32) {
    create_replicated_with(bootstrap, TOPIC, 1, rf, &[("segment.bytes", "65536")]);
}

/// Deletes the records of the partition below `offset`; returns the new log start.
fn delete_before(bootstrap: &str, offset: i64) -> i64 {
    let admin = admin(bootstrap);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Offset(offset))
        .expect("partition offset");
    let out = futures_lite::future::block_on(admin.delete_records(
        &tpl,
        &AdminOptions::new().operation_timeout(Some(KAFKA_TIMEOUT)),
    ))
    .expect("delete_records");
    let e = out.elements();
    let p = e.first().expect("one partition");
    assert!(p.error().is_ok(), "delete_records: {:?}", p.error());
    match p.offset() {
        Offset::Offset(o) => o,
        other => panic!("delete_records answered {other:?}"),
    }
}

#[test]
fn a_follower_behind_the_leaders_log_start_restarts_there_catches_up_and_leads() {
    let mut cluster = TestCluster::start(3, 1);
    let bootstrap = cluster.kafka_bootstrap();
    create_topic(&bootstrap, 3);
    let probe = consumer(&bootstrap, None, &[]);
    let leader = leader_of(&probe, TOPIC);
    let followers: Vec<i32> = (1..=3).filter(|&b| b != leader).collect();
    let (behind, other) = (followers[0], followers[1]);
    let p = producer(
        &bootstrap,
        &[
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "60000"),
            ("linger.ms", "2"),
        ],
    );
    let mut acked = send_acked(&p, TOPIC, 0, 200);
    assert_eq!(
        acked.len(),
        200,
        "the healthy cluster acknowledges everything"
    );
    eprintln!("leader {leader}; stopping follower {behind}");
    cluster.stop(behind as usize - 1);
    acked.extend(send_acked(&p, TOPIC, 200, 600));
    // Past everything the stopped follower holds (record 200 was not written to it).
    let delete_at = acked.iter().find(|(i, _)| *i == 450).expect("record 450").1;
    let log_start = delete_before(&bootstrap, delete_at);
    eprintln!("DeleteRecords before {delete_at}: log start {log_start}");
    let first_kept = acked.iter().find(|(i, _)| *i == 200).expect("record 200").1;
    assert!(
        log_start > first_kept && log_start <= delete_at,
        "log start {log_start} (asked {delete_at})"
    );
    acked.extend(send_acked(&p, TOPIC, 600, 800));
    // The follower that stayed up moves its own log start to the leader's.
    let checkpoint = cluster
        .data_dir(other as usize - 1)
        .join(format!("{TOPIC}-0"))
        .join("log-start-offset");
    let deadline = Instant::now() + Duration::from_secs(30);
    let want = format!("{log_start}\n");
    while std::fs::read_to_string(&checkpoint).ok().as_deref() != Some(want.as_str()) {
        assert!(
            Instant::now() < deadline,
            "follower {other}'s log start never reached {log_start}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    eprintln!("restarting {behind}");
    cluster.restart(behind as usize - 1);
    // The other follower stops: the next records commit only once the restarted one
    // holds them, which it can only after restarting its log at the leader's start.
    eprintln!("stopping follower {other}");
    cluster.stop(other as usize - 1);
    let before = acked.len();
    acked.extend(send_acked(&p, TOPIC, 800, 900));
    assert_eq!(
        acked.len() - before,
        100,
        "records acknowledged by the leader and the restarted follower"
    );
    // Only the restarted broker holds the last records, so it must win the election.
    eprintln!("SIGKILL leader {leader}; restarting {other}");
    cluster.kill(leader as usize - 1);
    cluster.restart(other as usize - 1);
    let bootstrap = cluster.kafka_bootstrap();
    let probe = consumer(&bootstrap, None, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut now_leading = leader_of(&probe, TOPIC);
    while now_leading != behind && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        now_leading = leader_of(&probe, TOPIC);
    }
    assert_eq!(
        now_leading, behind,
        "the only broker with every record leads"
    );

    let kept: Vec<(usize, i64)> = acked
        .iter()
        .copied()
        .filter(|(_, o)| *o >= log_start)
        .collect();
    assert!(
        kept.len() >= 450,
        "{} records after the delete point",
        kept.len()
    );
    let seen = read_all(&bootstrap, TOPIC, &kept);
    assert_eq!(
        seen.first().map(|(o, _)| *o),
        Some(log_start),
        "the new leader's log starts where the old leader's did"
    );
    check_log(&seen, &kept);
    // Its log was restarted: no segment of it is below the old leader's start.
    let dir = cluster
        .data_dir(behind as usize - 1)
        .join(format!("{TOPIC}-0"));
    assert_eq!(lowest_segment(&dir), Some(log_start), "{}", dir.display());
}

/// Base offset of the oldest segment file in a partition directory.
fn lowest_segment(dir: &std::path::Path) -> Option<i64> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".log")?.parse::<i64>().ok()
        })
        .min()
}

/// The partition's replicas in the cluster's metadata.
fn replicas_of(c: &BaseConsumer) -> Vec<i32> {
    c.fetch_metadata(Some(TOPIC), Duration::from_secs(10))
        .ok()
        .and_then(|md| {
            let t = md.topics().first()?;
            Some(t.partitions().first()?.replicas().to_vec())
        })
        .unwrap_or_default()
}

/// Asks for the partition to move to `replicas`.
fn reassign(wire: &mut KafkaWire, replicas: &[i32]) {
    let req = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(0)
                .with_replicas(Some(
                    replicas.iter().copied().map(BrokerId).collect(),
                ))])]);
    let resp: AlterPartitionReassignmentsResponse =
        wire.call(ApiKey::AlterPartitionReassignments, 0, &req);
    assert_eq!(resp.error_code, 0);
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0, "{:?}", p.error_message);
}

/// Waits (bounded) until the metadata shows `replicas` as the partition's replicas.
fn wait_for_replicas(c: &BaseConsumer, replicas: &[i32], cluster: &TestCluster) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut now = replicas_of(c);
    while now != replicas {
        assert!(
            Instant::now() < deadline,
            "replicas {now:?}, not {replicas:?}\n{}",
            cluster.stderr_tails()
        );
        std::thread::sleep(Duration::from_millis(250));
        now = replicas_of(c);
    }
}

#[test]
fn a_new_replica_of_a_partition_whose_log_start_moved_starts_there() {
    let cluster = TestCluster::start(3, 1);
    let bootstrap = cluster.kafka_bootstrap();
    create_topic(&bootstrap, 2);
    let probe = consumer(&bootstrap, None, &[]);
    leader_of(&probe, TOPIC);
    let replicas = replicas_of(&probe);
    let spare = (1..=3)
        .find(|b| !replicas.contains(b))
        .expect("a spare broker");
    let p = producer(
        &bootstrap,
        &[
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "60000"),
            ("linger.ms", "2"),
        ],
    );
    let mut acked = send_acked(&p, TOPIC, 0, 400);
    let delete_at = acked.iter().find(|(i, _)| *i == 250).expect("record 250").1;
    let log_start = delete_before(&bootstrap, delete_at);
    assert!(
        log_start > 0 && log_start <= delete_at,
        "log start {log_start}"
    );
    acked.extend(send_acked(&p, TOPIC, 400, 500));

    // The spare broker joins as a learner (its log empty, at 0: below the leader's
    // start); then the partition moves onto it alone, so everything read back next
    // comes from the log it built.
    let mut wire = KafkaWire::connect(&cluster.kafka_addr(0));
    let mut grown = replicas.clone();
    grown.push(spare);
    reassign(&mut wire, &grown);
    wait_for_replicas(&probe, &grown, &cluster);
    let dir = cluster
        .data_dir(spare as usize - 1)
        .join(format!("{TOPIC}-0"));
    assert_eq!(lowest_segment(&dir), Some(log_start), "{}", dir.display());
    reassign(&mut wire, &[spare]);
    wait_for_replicas(&probe, &[spare], &cluster);
    acked.extend(send_acked(&p, TOPIC, 500, 600));

    let kept: Vec<(usize, i64)> = acked
        .iter()
        .copied()
        .filter(|(_, o)| *o >= log_start)
        .collect();
    let seen = read_all(&bootstrap, TOPIC, &kept);
    assert_eq!(seen.first().map(|(o, _)| *o), Some(log_start));
    check_log(&seen, &kept);
}
