//! A 3-broker cluster of real `strata` processes on 127.0.0.1: a topic with
//! replication factor 3, librdkafka producing with `acks=all` (idempotent), and the
//! partition's leader SIGKILLed mid-stream. Every acknowledged record must be in the
//! log exactly once and in the order it was produced, the producer must carry on on
//! the new leader, and the killed broker must rejoin and catch up.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use strata_tests::cluster::TestCluster;
use strata_tests::kafka::{admin, consumer, producer, read_record, KAFKA_TIMEOUT};

/// Records the producer attempts; the leader dies after `KILL_AFTER` acknowledgements.
const RECORDS: usize = 3_000;
const KILL_AFTER: usize = 1_000;
/// Records in flight at once.
const WINDOW: usize = 50;
/// Bound on the whole produce phase.
const PRODUCE_DEADLINE: Duration = Duration::from_secs(180);

/// Creates `topic` (retrying while the controller quorum elects its first leader).
fn create_replicated(bootstrap: &str, topic: &str, partitions: i32, rf: i32) {
    let admin = admin(bootstrap);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(rf));
        let results = futures_lite::future::block_on(admin.create_topics(
            [&new],
            &AdminOptions::new().operation_timeout(Some(KAFKA_TIMEOUT)),
        ))
        .expect("create_topics request");
        match &results[0] {
            Ok(_) => return,
            Err((_, e)) if Instant::now() < deadline => {
                eprintln!("create {topic}: {e}; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err((_, e)) => panic!("create {topic}: {e}"),
        }
    }
}

/// The broker id leading `topic`-0, once the cluster's metadata names one.
fn leader_of(c: &BaseConsumer, topic: &str) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(md) = c.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            let leader = md
                .topics()
                .first()
                .and_then(|t| t.partitions().first())
                .map(|p| p.leader())
                .filter(|l| *l >= 0);
            if let Some(l) = leader {
                return l;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no leader for {topic}-0 within 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn leader_sigkill_under_acks_all_loses_no_acknowledged_record() {
    let mut cluster = TestCluster::start(3, 1);
    let bootstrap = cluster.kafka_bootstrap();
    let topic = "failover";
    create_replicated(&bootstrap, topic, 1, 3);
    let probe = consumer(&bootstrap, None, &[]);
    let first_leader = leader_of(&probe, topic);
    eprintln!("leader of {topic}-0: broker {first_leader}");

    let p = producer(
        &bootstrap,
        &[
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "60000"),
            ("linger.ms", "2"),
        ],
    );
    let started = Instant::now();
    let mut acked: Vec<(usize, i64)> = Vec::new();
    let mut failed = 0usize;
    let mut killed = false;
    let mut next = 0usize;
    while next < RECORDS && started.elapsed() < PRODUCE_DEADLINE {
        let end = (next + WINDOW).min(RECORDS);
        let values: Vec<(usize, String)> =
            (next..end).map(|i| (i, format!("record-{i:06}"))).collect();
        let mut deliveries = Vec::with_capacity(values.len());
        for (i, value) in &values {
            match p.send_result(FutureRecord::<(), _>::to(topic).partition(0).payload(value)) {
                Ok(delivery) => deliveries.push((*i, delivery)),
                Err(_) => failed += 1,
            }
        }
        for (i, delivery) in deliveries {
            match futures_lite::future::block_on(delivery) {
                Ok(Ok(d)) => acked.push((i, d.offset)),
                _ => failed += 1,
            }
        }
        next = end;
        if !killed && acked.len() >= KILL_AFTER {
            let leader = leader_of(&probe, topic);
            eprintln!("SIGKILL broker {leader} after {} acks", acked.len());
            cluster.kill(leader as usize - 1);
            killed = true;
        }
    }
    assert!(killed, "the leader was never killed ({} acks)", acked.len());
    eprintln!(
        "produced {next} records: {} acknowledged, {failed} failed, in {:?}",
        acked.len(),
        started.elapsed()
    );
    assert!(
        acked.len() > KILL_AFTER,
        "the producer did not resume on the new leader ({} acks)",
        acked.len()
    );
    let new_leader = leader_of(&probe, topic);
    assert_ne!(
        new_leader, first_leader,
        "a new leader must have taken over"
    );

    let seen = read_all(&bootstrap, topic, &acked);
    check_log(&seen, &acked);

    // The killed broker comes back and catches up; then the current leader dies too,
    // so the partition lives on the restarted broker and one other: every
    // acknowledged record is still there, once.
    cluster.restart(first_leader as usize - 1);
    let probe = consumer(&bootstrap, None, &[]);
    let second_leader = leader_of(&probe, topic);
    eprintln!("restarted broker {first_leader}; SIGKILL leader {second_leader}");
    cluster.kill(second_leader as usize - 1);
    let bootstrap = cluster.kafka_bootstrap();
    let seen = read_all(&bootstrap, topic, &acked);
    check_log(&seen, &acked);
}

/// Reads `topic`-0 from the start until every acknowledged record was seen (or 90 s).
fn read_all(bootstrap: &str, topic: &str, acked: &[(usize, i64)]) -> Vec<(i64, String)> {
    let c = consumer(bootstrap, None, &[("enable.partition.eof", "false")]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("assign offset");
    c.assign(&tpl).expect("assign");
    let want: HashSet<String> = acked
        .iter()
        .map(|(i, _)| format!("record-{i:06}"))
        .collect();
    let mut seen: Vec<(i64, String)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut found = 0usize;
    while found < want.len() && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(500)) {
            let r = read_record(&m);
            let v = String::from_utf8(r.record.value.unwrap_or_default()).expect("utf-8 value");
            if want.contains(&v) {
                found += 1;
            }
            seen.push((r.offset, v));
        }
    }
    seen
}

/// Every acknowledged record once, at its acknowledged offset, in production order.
fn check_log(seen: &[(i64, String)], acked: &[(usize, i64)]) {
    let mut counts = std::collections::HashMap::new();
    for (_, v) in seen {
        *counts.entry(v.clone()).or_insert(0usize) += 1;
    }
    let missing: Vec<String> = acked
        .iter()
        .map(|(i, _)| format!("record-{i:06}"))
        .filter(|v| !counts.contains_key(v))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged records lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "records stored twice: {:?}",
        &twice[..twice.len().min(5)]
    );
    let values: Vec<&String> = seen.iter().map(|(_, v)| v).collect();
    assert!(
        values.windows(2).all(|w| w[0] < w[1]),
        "records out of order"
    );
    for (i, off) in acked {
        let v = format!("record-{i:06}");
        let at = seen.iter().find(|(_, s)| *s == v).map(|(o, _)| *o);
        assert_eq!(at, Some(*off), "{v} acknowledged at {off}");
    }
}
