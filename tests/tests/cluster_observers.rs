//! A broker outside the controller quorum: a 4-broker cluster whose `--voters` name
//! brokers 1–3. Broker 4 registers through a voter, follows the metadata log as an
//! observer (it applies every change, from any broker, even after a voter dies), hosts
//! and leads replicas, and serves clients like any other broker.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use strata_tests::cluster::TestCluster;
use strata_tests::cluster_kafka::{check_log, create_assigned, create_replicated, read_all};
use strata_tests::kafka::{consumer, producer};

/// Records produced through the non-voter.
const RECORDS: usize = 300;

/// Waits until `c` (bound to one broker) sees `topic` with a leader for every partition
/// and `brokers` brokers; returns each partition's (leader, replicas).
fn wait_for_topic(c: &BaseConsumer, topic: &str, brokers: usize) -> Vec<(i32, Vec<i32>)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(md) = c.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            let parts: Vec<(i32, Vec<i32>)> = md
                .topics()
                .first()
                .map(|t| {
                    t.partitions()
                        .iter()
                        .map(|p| (p.leader(), p.replicas().to_vec()))
                        .collect()
                })
                .unwrap_or_default();
            if md.brokers().len() == brokers
                && !parts.is_empty()
                && parts.iter().all(|(l, _)| *l >= 1)
            {
                return parts;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{topic} never had {brokers} brokers and leaders in this broker's metadata"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn a_non_voter_broker_joins_follows_the_metadata_and_leads_partitions() {
    let mut cluster = TestCluster::start(4, 1);
    let observer = cluster.kafka_addr(3);
    // Created through a voter; seen by the observer with all four brokers.
    create_replicated(&cluster.kafka_addr(0), "seen", 2, 3);
    let on_observer = consumer(&observer, None, &[]);
    wait_for_topic(&on_observer, "seen", 4);

    // Created through the observer (forwarded to the controller), led by broker 4.
    create_assigned(&observer, "led", &[&[4, 1, 2]]);
    let parts = wait_for_topic(&on_observer, "led", 4);
    assert_eq!(parts[0].1, vec![4, 1, 2], "the explicit assignment is kept");

    let p = producer(
        &observer,
        &[
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "60000"),
        ],
    );
    let mut acked = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let value = format!("record-{i:06}");
        let d = futures_lite::future::block_on(
            p.send(
                FutureRecord::<(), _>::to("led")
                    .partition(0)
                    .payload(&value),
                Duration::from_secs(60),
            ),
        );
        let d = d.unwrap_or_else(|(e, _)| panic!("record {i} not acknowledged: {e}"));
        acked.push((i, d.offset));
    }
    let seen = read_all(&cluster.kafka_bootstrap(), "led", &acked);
    check_log(&seen, &acked);

    // A voter dies; the observer keeps following the quorum's new state.
    cluster.kill(0);
    create_replicated(&observer, "after", 1, 2);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let led = on_observer
            .fetch_metadata(Some("after"), Duration::from_secs(5))
            .ok()
            .and_then(|md| {
                md.topics()
                    .first()
                    .map(|t| t.partitions().len() == 1 && t.partitions()[0].leader() >= 1)
            });
        if led == Some(true) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the observer never saw `after` led"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}
