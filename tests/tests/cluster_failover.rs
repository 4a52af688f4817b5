//! A 3-broker cluster of real `strata` processes on 127.0.0.1: a topic with
//! replication factor 3, librdkafka producing with `acks=all` (idempotent), and the
//! partition's leader SIGKILLed mid-stream. Every acknowledged record must be in the
//! log exactly once and in the order it was produced, the producer must carry on on
//! the new leader, and the killed broker must rejoin and catch up.

use std::time::{Duration, Instant};

use rdkafka::producer::FutureRecord;
use strata_tests::cluster::TestCluster;
use strata_tests::cluster_kafka::{check_log, create_replicated, leader_of, read_all};
use strata_tests::kafka::{consumer, producer};

/// Records the producer attempts; the leader dies after `KILL_AFTER` acknowledgements.
const RECORDS: usize = 3_000;
const KILL_AFTER: usize = 1_000;
/// Records in flight at once.
const WINDOW: usize = 50;
/// Bound on the whole produce phase.
const PRODUCE_DEADLINE: Duration = Duration::from_secs(180);

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

/// The leader frozen (SIGSTOP: it neither answers nor times out, like a broker cut
/// off from the others) while producing continues: the majority elects a new leader
/// and acknowledges on it; when the old leader thaws (SIGCONT) it must step down and
/// follow, dropping anything it held that did not commit. Then the new leader dies,
/// so the old one is needed for the majority: every acknowledged record is still
/// there, once and in order.
#[test]
fn a_frozen_leader_is_replaced_and_follows_when_it_returns() {
    let mut cluster = TestCluster::start(3, 1);
    let bootstrap = cluster.kafka_bootstrap();
    let topic = "frozen";
    create_replicated(&bootstrap, topic, 1, 3);
    let probe = consumer(&bootstrap, None, &[]);
    let p = producer(
        &bootstrap,
        &[
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "60000"),
            ("request.timeout.ms", "3000"),
            ("linger.ms", "2"),
        ],
    );
    let mut acked: Vec<(usize, i64)> = Vec::new();
    let send = |from: usize, to: usize, acked: &mut Vec<(usize, i64)>| {
        let values: Vec<(usize, String)> =
            (from..to).map(|i| (i, format!("record-{i:06}"))).collect();
        for chunk in values.chunks(25) {
            let mut ds = Vec::new();
            for (i, v) in chunk {
                if let Ok(d) =
                    p.send_result(FutureRecord::<(), _>::to(topic).partition(0).payload(v))
                {
                    ds.push((*i, d));
                }
            }
            for (i, d) in ds {
                if let Ok(Ok(d)) = futures_lite::future::block_on(d) {
                    acked.push((i, d.offset));
                }
            }
        }
    };
    send(0, 500, &mut acked);
    let frozen = leader_of(&probe, topic);
    eprintln!("SIGSTOP leader {frozen}");
    cluster.node(frozen as usize - 1).signal(libc::SIGSTOP);
    let before = acked.len();
    send(500, 1000, &mut acked);
    assert!(
        acked.len() > before,
        "nothing acknowledged while the leader was frozen"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut new_leader = leader_of(&probe, topic);
    while new_leader == frozen && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        new_leader = leader_of(&probe, topic);
    }
    assert_ne!(
        new_leader, frozen,
        "no new leader while the old one was frozen"
    );
    eprintln!("new leader {new_leader}; SIGCONT {frozen}");
    cluster.node(frozen as usize - 1).signal(libc::SIGCONT);
    send(1000, 1500, &mut acked);
    std::thread::sleep(Duration::from_secs(3));
    eprintln!("SIGKILL leader {new_leader}");
    cluster.kill(new_leader as usize - 1);
    check_log(&read_all(&bootstrap, topic, &acked), &acked);
}
