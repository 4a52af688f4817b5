//! A 3-broker cluster restarted under load: every broker in turn stopped gracefully
//! and started again while librdkafka produces with `acks=all`, and the whole cluster
//! SIGKILLed at once and started again. Nothing acknowledged may be lost, doubled or
//! reordered, and the cluster must accept produces again after each restart.

use std::time::{Duration, Instant};

use rdkafka::producer::{FutureProducer, FutureRecord};
use strata_tests::cluster::TestCluster;
use strata_tests::cluster_kafka::{check_log, create_replicated, read_all};
use strata_tests::kafka::producer;

/// Records produced between two restarts.
const STEP: usize = 300;

/// Produces records `from..from + STEP` (in order, 25 in flight) and notes the
/// acknowledged ones; gives up after `deadline`.
fn produce_step(p: &FutureProducer, topic: &str, from: usize, acked: &mut Vec<(usize, i64)>) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut next = from;
    while next < from + STEP && Instant::now() < deadline {
        let end = (next + 25).min(from + STEP);
        let values: Vec<(usize, String)> =
            (next..end).map(|i| (i, format!("record-{i:06}"))).collect();
        let mut deliveries = Vec::new();
        for (i, v) in &values {
            if let Ok(d) = p.send_result(FutureRecord::<(), _>::to(topic).partition(0).payload(v)) {
                deliveries.push((*i, d));
            }
        }
        for (i, d) in deliveries {
            if let Ok(Ok(d)) = futures_lite::future::block_on(d) {
                acked.push((i, d.offset));
            }
        }
        next = end;
    }
}

fn acks_all_producer(bootstrap: &str) -> FutureProducer {
    producer(
        bootstrap,
        &[
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "60000"),
            ("linger.ms", "2"),
        ],
    )
}

#[test]
fn rolling_restart_under_load_loses_no_acknowledged_record() {
    let mut cluster = TestCluster::start(3, 1);
    let bootstrap = cluster.kafka_bootstrap();
    let topic = "rolling";
    create_replicated(&bootstrap, topic, 1, 3);
    let p = acks_all_producer(&bootstrap);
    let mut acked = Vec::new();
    let mut next = 0;
    produce_step(&p, topic, next, &mut acked);
    next += STEP;
    for i in 0..cluster.len() {
        let took = cluster.stop(i);
        eprintln!("node {} stopped gracefully in {took:?}", i + 1);
        let before = acked.len();
        produce_step(&p, topic, next, &mut acked);
        next += STEP;
        assert!(
            acked.len() > before,
            "no produce acknowledged with node {} down",
            i + 1
        );
        cluster.restart(i);
        produce_step(&p, topic, next, &mut acked);
        next += STEP;
    }
    eprintln!("{} of {next} records acknowledged", acked.len());
    check_log(&read_all(&bootstrap, topic, &acked), &acked);
}

#[test]
fn whole_cluster_sigkill_and_restart_loses_no_acknowledged_record() {
    let mut cluster = TestCluster::start(3, 1);
    let bootstrap = cluster.kafka_bootstrap();
    let topic = "whole";
    create_replicated(&bootstrap, topic, 1, 3);
    let mut acked = Vec::new();
    {
        let p = acks_all_producer(&bootstrap);
        produce_step(&p, topic, 0, &mut acked);
    }
    assert!(!acked.is_empty(), "nothing acknowledged before the kill");
    for i in 0..cluster.len() {
        cluster.kill(i);
    }
    for i in 0..cluster.len() {
        cluster.restart(i);
    }
    let p = acks_all_producer(&bootstrap);
    let before = acked.len();
    produce_step(&p, topic, STEP, &mut acked);
    assert!(
        acked.len() > before,
        "no produce acknowledged after the restart"
    );
    check_log(&read_all(&bootstrap, topic, &acked), &acked);
}
