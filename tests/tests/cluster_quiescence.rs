//! Idle partitions go quiescent (their leaders stop heartbeating; only one heartbeat
//! stream per broker pair remains), yet a produce wakes them and a leader broker that
//! dies or freezes while they are quiet is replaced: 3 real `strata` processes on
//! 127.0.0.1, librdkafka with `acks=all`.

use std::time::{Duration, Instant};

use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::{FutureProducer, FutureRecord};
use strata_tests::cluster::TestCluster;
use strata_tests::cluster_kafka::{check_log, create_replicated, leader_of, read_all};
use strata_tests::kafka::{consumer, producer};

/// Long enough for every idle group to go quiescent (half a second of idle ticks).
const IDLE: Duration = Duration::from_secs(3);
/// Bound on waiting for leaders after a failure.
const LEADER_DEADLINE: Duration = Duration::from_secs(60);

fn kafka_producer(bootstrap: &str) -> FutureProducer {
    producer(
        bootstrap,
        &[
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "60000"),
            ("request.timeout.ms", "3000"),
            ("linger.ms", "2"),
        ],
    )
}

/// Produces records `from..to` to `topic`-`partition`, keeping the acknowledged ones.
fn send(
    p: &FutureProducer,
    topic: &str,
    partition: i32,
    from: usize,
    to: usize,
    acked: &mut Vec<(usize, i64)>,
) {
    let values: Vec<(usize, String)> = (from..to).map(|i| (i, format!("record-{i:06}"))).collect();
    let mut ds = Vec::new();
    for (i, v) in &values {
        if let Ok(d) = p.send_result(
            FutureRecord::<(), _>::to(topic)
                .partition(partition)
                .payload(v),
        ) {
            ds.push((*i, d));
        }
    }
    for (i, d) in ds {
        if let Ok(Ok(d)) = futures_lite::future::block_on(d) {
            acked.push((i, d.offset));
        }
    }
}

/// Leaders of every partition of `topic` as metadata names them (-1: none).
fn leaders(c: &BaseConsumer, topic: &str) -> Vec<i32> {
    use rdkafka::consumer::Consumer;
    match c.fetch_metadata(Some(topic), Duration::from_secs(5)) {
        Ok(md) => md
            .topics()
            .first()
            .map(|t| t.partitions().iter().map(|p| p.leader()).collect())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn a_frozen_then_a_killed_leader_of_a_quiet_partition_is_replaced() {
    let mut cluster = TestCluster::start(3, 1);
    let bootstrap = cluster.kafka_bootstrap();
    let topic = "quiet";
    create_replicated(&bootstrap, topic, 1, 3);
    let probe = consumer(&bootstrap, None, &[]);
    let p = kafka_producer(&bootstrap);
    let mut acked = Vec::new();
    send(&p, topic, 0, 0, 100, &mut acked);
    assert_eq!(acked.len(), 100, "the first records were not acknowledged");
    // Quiet: the group stops heartbeating. Then a produce must wake it.
    std::thread::sleep(IDLE);
    send(&p, topic, 0, 100, 200, &mut acked);
    assert_eq!(
        acked.len(),
        200,
        "a produce to a quiet partition was not acknowledged"
    );

    // Quiet again, then the leader freezes: no connection drops, so only the
    // broker-pair heartbeats' silence can tell the followers.
    std::thread::sleep(IDLE);
    let frozen = leader_of(&probe, topic);
    eprintln!("SIGSTOP leader {frozen} of a quiet partition");
    cluster.node(frozen as usize - 1).signal(libc::SIGSTOP);
    let before = acked.len();
    send(&p, topic, 0, 200, 300, &mut acked);
    assert!(
        acked.len() > before,
        "nothing acknowledged after the quiet partition's leader froze"
    );
    let new_leader = leader_of(&probe, topic);
    assert_ne!(new_leader, frozen, "the frozen broker still leads");
    cluster.node(frozen as usize - 1).signal(libc::SIGCONT);

    // Quiet again, then the new leader is killed (its connections reset at once).
    std::thread::sleep(IDLE);
    eprintln!("SIGKILL leader {new_leader} of a quiet partition");
    cluster.kill(new_leader as usize - 1);
    let before = acked.len();
    send(&p, topic, 0, 300, 400, &mut acked);
    assert!(
        acked.len() > before,
        "nothing acknowledged after the quiet partition's leader was killed"
    );
    check_log(&read_all(&bootstrap, topic, &acked), &acked);
}

#[test]
fn every_quiet_partition_led_by_a_killed_broker_gets_a_new_leader() {
    let mut cluster = TestCluster::start(3, 2);
    let bootstrap = cluster.kafka_bootstrap();
    let topic = "many-quiet";
    let partitions = 60;
    create_replicated(&bootstrap, topic, partitions, 3);
    let probe = consumer(&bootstrap, None, &[]);
    let deadline = Instant::now() + LEADER_DEADLINE;
    let mut now = leaders(&probe, topic);
    while (now.len() != partitions as usize || now.contains(&-1)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        now = leaders(&probe, topic);
    }
    assert!(!now.contains(&-1) && !now.is_empty(), "leaders: {now:?}");
    std::thread::sleep(IDLE);
    let victim = now[0];
    let led = now.iter().filter(|&&l| l == victim).count();
    eprintln!("SIGKILL broker {victim}, leader of {led} of {partitions} quiet partitions");
    cluster.kill(victim as usize - 1);
    let deadline = Instant::now() + LEADER_DEADLINE;
    let mut after = leaders(&probe, topic);
    while (after.len() != partitions as usize || after.iter().any(|&l| l == victim || l < 0))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(200));
        after = leaders(&probe, topic);
    }
    assert!(
        after.len() == partitions as usize && after.iter().all(|&l| l != victim && l >= 0),
        "partitions still led by the killed broker or leaderless: {after:?}\n{}",
        cluster.stderr_tails()
    );
    // And each of them takes a write on its new leader.
    let p = kafka_producer(&bootstrap);
    for partition in 0..partitions {
        let mut acked = Vec::new();
        send(&p, topic, partition, 0, 1, &mut acked);
        assert_eq!(acked.len(), 1, "partition {partition} refused a write");
    }
}
