//! strata-client (native protocol) helpers for cluster tests, beside the Kafka ones
//! in [`crate::cluster_kafka`]: create a replicated topic, find a partition's leader,
//! read partitions back with the strata-client consumer. Check what was read with
//! [`crate::cluster_kafka::check_log`] (values are `record-NNNNNN`).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use strata_client::{Admin, AdminConfig, Consumer, ConsumerConfig};

/// An admin client over every given broker (it fails over between them).
pub fn native_admin(brokers: &[String]) -> Admin {
    Admin::connect(AdminConfig {
        brokers: brokers.to_vec(),
        request_timeout: Duration::from_secs(10),
    })
    .expect("admin connects")
}

/// Creates `topic` with `rf` replicas (retrying while the controller quorum elects
/// its first leader), then waits until every partition has a leader.
pub fn create_replicated_native(admin: &Admin, topic: &str, partitions: u32, rf: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match admin
            .create_replicated_topic(topic, partitions, Some(rf), &[])
            .wait()
        {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("create {topic}: {e}; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!("create {topic}: {e}"),
        }
    }
    for p in 0..partitions {
        leader_of_native(admin, topic, p);
    }
}

/// The broker id leading `topic`/`partition`, once the cluster's metadata names one.
pub fn leader_of_native(admin: &Admin, topic: &str, partition: u32) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(t) = admin.describe_topic(topic).wait() {
            let leader = t
                .partitions
                .iter()
                .find(|p| p.partition == partition)
                .map(|p| p.leader_broker)
                .filter(|l| *l >= 0);
            if let Some(l) = leader {
                return l;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no leader for {topic}-{partition} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `(offset, value)` read per partition.
pub type SeenByPartition = HashMap<u32, Vec<(i64, String)>>;

/// A consumer over every given broker, assigned `partitions` of `topic` from offset 0,
/// fetching at most `partition_max_bytes` per partition at a time (small: many
/// fetches).
pub fn native_reader(
    brokers: &[String],
    topic: &str,
    partitions: u32,
    partition_max_bytes: u32,
) -> Consumer {
    let mut c = Consumer::connect(ConsumerConfig {
        brokers: brokers.to_vec(),
        fetch_partition_max_bytes: partition_max_bytes,
        fetch_max_wait: Duration::from_millis(200),
        request_timeout: Duration::from_secs(10),
        ..ConsumerConfig::default()
    })
    .expect("consumer connects");
    let assigned: Vec<(&str, u32)> = (0..partitions).map(|p| (topic, p)).collect();
    c.assign(&assigned);
    for p in 0..partitions {
        c.seek(topic, p, 0).expect("seek");
    }
    c
}

/// Polls `c` into `seen` until `want` values were all seen (or `timeout` passed);
/// returns whether they were.
pub fn read_until(
    c: &mut Consumer,
    seen: &mut SeenByPartition,
    want: &HashSet<String>,
    timeout: Duration,
) -> bool {
    let deadline = Instant::now() + timeout;
    let found = |seen: &SeenByPartition| {
        seen.values()
            .flatten()
            .filter(|(_, v)| want.contains(v))
            .count()
    };
    while found(seen) < want.len() && Instant::now() < deadline {
        match c.poll(Duration::from_millis(500)) {
            Ok(records) => {
                for r in &records {
                    let v = String::from_utf8(r.value().unwrap_or_default().to_vec())
                        .expect("utf-8 value");
                    seen.entry(r.partition()).or_default().push((r.offset(), v));
                }
            }
            Err(e) => {
                eprintln!("poll: {e}; retrying");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    found(seen) >= want.len()
}
