//! Kafka-client helpers for cluster tests: create a replicated topic, find a
//! partition's leader, read a partition back and check it against what was
//! acknowledged (every record once, at its offset, in production order).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::kafka::{admin, consumer, read_record, KAFKA_TIMEOUT};

/// Creates `topic` (retrying while the controller quorum elects its first leader).
pub fn create_replicated(bootstrap: &str, topic: &str, partitions: i32, rf: i32) {
    create_replicated_with(bootstrap, topic, partitions, rf, &[]);
}

/// [`create_replicated`] with topic configs.
pub fn create_replicated_with(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    rf: i32,
    configs: &[(&str, &str)],
) {
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(rf));
    for (k, v) in configs {
        new = new.set(k, v);
    }
    create_retrying(bootstrap, &new);
}

/// Creates `topic` with one partition per entry of `assignment`, on exactly those
/// brokers (the first of each its preferred leader), retrying as
/// [`create_replicated`] does.
pub fn create_assigned(bootstrap: &str, topic: &str, assignment: &[&[i32]]) {
    let new = NewTopic::new(
        topic,
        assignment.len() as i32,
        TopicReplication::Variable(assignment),
    );
    create_retrying(bootstrap, &new);
}

/// Sends CreateTopics for `new` until it succeeds (60 s at most).
fn create_retrying(bootstrap: &str, new: &NewTopic<'_>) {
    let admin = admin(bootstrap);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let results = futures_lite::future::block_on(admin.create_topics(
            [new],
            &AdminOptions::new().operation_timeout(Some(KAFKA_TIMEOUT)),
        ))
        .expect("create_topics request");
        match &results[0] {
            Ok(_) => return,
            Err((_, e)) if Instant::now() < deadline => {
                eprintln!("create {}: {e}; retrying", new.name);
                std::thread::sleep(Duration::from_millis(500));
            }
            Err((_, e)) => panic!("create {}: {e}", new.name),
        }
    }
}

/// The broker id leading `topic`-0, once the cluster's metadata names one.
pub fn leader_of(c: &BaseConsumer, topic: &str) -> i32 {
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

/// Produces records `from..to` (as `record-NNNNNN`, the form [`read_all`] and
/// [`check_log`] know) to `topic`-0, 25 in flight at a time; returns the acknowledged
/// (record, offset) pairs.
pub fn send_acked(p: &FutureProducer, topic: &str, from: usize, to: usize) -> Vec<(usize, i64)> {
    let mut acked = Vec::new();
    let values: Vec<(usize, String)> = (from..to).map(|i| (i, format!("record-{i:06}"))).collect();
    for chunk in values.chunks(25) {
        let mut ds = Vec::new();
        for (i, v) in chunk {
            if let Ok(d) = p.send_result(FutureRecord::<(), _>::to(topic).partition(0).payload(v)) {
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

/// Reads `topic`-0 from the start until every acknowledged record was seen (or 90 s).
pub fn read_all(bootstrap: &str, topic: &str, acked: &[(usize, i64)]) -> Vec<(i64, String)> {
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
pub fn check_log(seen: &[(i64, String)], acked: &[(usize, i64)]) {
    let mut counts = HashMap::new();
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
