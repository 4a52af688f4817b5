//! Topic administration of a cluster through the CLI (native protocol) and what Kafka
//! clients then see: a replication factor up to the broker count is placed on
//! distinct brokers, one beyond it is refused with INVALID_REPLICATION_FACTOR, and a
//! single node refuses more than one replica.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use strata_tests::broker::TestBroker;
use strata_tests::cluster::TestCluster;
use strata_tests::kafka::consumer;

#[test]
fn cli_creates_replicated_topics_up_to_the_broker_count() {
    let mut cluster = TestCluster::start(3, 1);
    // The quorum may still be electing its first leader and the brokers registering.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = cluster
            .node(0)
            .cli(&["topic", "create", "rep", "-p", "4", "-r", "3"], None);
        if out.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "create never succeeded: {out:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let refused = cluster
        .node(1)
        .cli(&["topic", "create", "toomany", "-r", "4"], None);
    refused.assert_user_error();
    assert!(
        refused.stderr.contains("INVALID_REPLICATION_FACTOR"),
        "{}",
        refused.stderr
    );
    let c = consumer(&cluster.kafka_bootstrap(), None, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let md = c
            .fetch_metadata(Some("rep"), Duration::from_secs(5))
            .expect("metadata");
        let t = &md.topics()[0];
        let placed = t.partitions().len() == 4
            && t.partitions().iter().all(|p| {
                let replicas: HashSet<i32> = p.replicas().iter().copied().collect();
                replicas.len() == 3 && p.leader() >= 1
            });
        if placed {
            let leaders: HashSet<i32> = t.partitions().iter().map(|p| p.leader()).collect();
            assert!(leaders.len() >= 2, "leaders not spread: {leaders:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "partitions not placed and led in 30 s"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn a_single_node_refuses_more_than_one_replica() {
    let broker = TestBroker::start();
    let out = broker.cli(&["topic", "create", "two", "-r", "2"], None);
    out.assert_user_error();
    assert!(
        out.stderr.contains("INVALID_REPLICATION_FACTOR"),
        "{}",
        out.stderr
    );
    broker
        .cli(&["topic", "create", "one", "-r", "1"], None)
        .assert_success();
}
