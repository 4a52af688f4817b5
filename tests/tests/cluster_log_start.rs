//! A follower whose log ends below its leader's log start: 3 brokers, a topic with
//! replication factor 3 and small segments; one follower is stopped while records are
//! produced and DeleteRecords moves the leader's log start past everything the
//! follower holds. When it restarts it cannot be sent the deleted records: its log is
//! restarted empty at the leader's start and it catches up from there. Then the other
//! follower stops and the leader dies, so the restarted broker must lead: it has
//! every record acknowledged after the delete point, once, at its offset, in order,
//! and its log starts where the leader's did.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use strata_tests::cluster::TestCluster;
use strata_tests::cluster_kafka::{check_log, leader_of, read_all};
use strata_tests::kafka::{admin, consumer, producer, KAFKA_TIMEOUT};

const TOPIC: &str = "log-start";

/// Creates the topic with 64 KiB segments (retrying while the controller elects).
fn create_topic(bootstrap: &str) {
    let admin = admin(bootstrap);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let new = NewTopic::new(TOPIC, 1, TopicReplication::Fixed(3)).set("segment.bytes", "65536");
        let results = futures_lite::future::block_on(admin.create_topics(
            [&new],
            &AdminOptions::new().operation_timeout(Some(KAFKA_TIMEOUT)),
        ))
        .expect("create_topics request");
        match &results[0] {
            Ok(_) => return,
            Err((_, e)) if Instant::now() < deadline => {
                eprintln!("create {TOPIC}: {e}; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err((_, e)) => panic!("create {TOPIC}: {e}"),
        }
    }
}

/// Produces records `from..to` with acks=all; returns the acknowledged (record,
/// offset) pairs.
fn send(p: &FutureProducer, from: usize, to: usize) -> Vec<(usize, i64)> {
    let mut acked = Vec::new();
    let values: Vec<(usize, String)> = (from..to).map(|i| (i, format!("record-{i:06}"))).collect();
    for chunk in values.chunks(25) {
        let mut ds = Vec::new();
        for (i, v) in chunk {
            if let Ok(d) = p.send_result(FutureRecord::<(), _>::to(TOPIC).partition(0).payload(v)) {
                ds.push((*i, d));
            }
        }
        for (i, d) in ds {
            if let Ok(Ok(d)) = futures_lite::future::block_on(d) {
                acked.push((i, d.offset));
            }
        }
    }
    acked
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
    create_topic(&bootstrap);
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
    let mut acked = send(&p, 0, 200);
    assert_eq!(
        acked.len(),
        200,
        "the healthy cluster acknowledges everything"
    );
    eprintln!("leader {leader}; stopping follower {behind}");
    cluster.stop(behind as usize - 1);
    acked.extend(send(&p, 200, 600));
    // Past everything the stopped follower holds (record 200 was not written to it).
    let delete_at = acked.iter().find(|(i, _)| *i == 450).expect("record 450").1;
    let log_start = delete_before(&bootstrap, delete_at);
    eprintln!("DeleteRecords before {delete_at}: log start {log_start}");
    let first_kept = acked.iter().find(|(i, _)| *i == 200).expect("record 200").1;
    assert!(
        log_start > first_kept && log_start <= delete_at,
        "log start {log_start} (asked {delete_at})"
    );
    acked.extend(send(&p, 600, 800));

    eprintln!("restarting {behind}");
    cluster.restart(behind as usize - 1);
    // The other follower stops: the next records commit only once the restarted one
    // holds them, which it can only after restarting its log at the leader's start.
    eprintln!("stopping follower {other}");
    cluster.stop(other as usize - 1);
    let before = acked.len();
    acked.extend(send(&p, 800, 900));
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
    let lowest_segment = std::fs::read_dir(&dir)
        .expect("partition dir")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".log")?.parse::<i64>().ok()
        })
        .min();
    assert_eq!(lowest_segment, Some(log_start), "{}", dir.display());
}
